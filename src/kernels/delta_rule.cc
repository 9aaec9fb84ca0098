#include "kernels/delta_rule.h"

#include <immintrin.h>

#include "kernels/dispatch.h"
#include "kernels/gemm_internal.h"
#include "kernels/gemm_simd.h"

namespace rwkv_embed::kernels {

void DeltaRuleHeadPortable(const float* r, const float* w, const float* k, const float* v,
                           const float* a, const float* b, int64_t T, int64_t h, int64_t N,
                           int64_t stride, float* state_h, float* y) {
  const int64_t off = h * N;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t o = t * stride + off;
    const float *rt = r + o, *wt = w + o, *kt = k + o, *vt = v + o, *at = a + o, *bt = b + o;
    float* yt = y + o;
    for (int64_t i = 0; i < N; ++i) {
      float* row = state_h + i * N;
      float sa = 0.0f;
      for (int64_t j = 0; j < N; ++j) sa += row[j] * at[j];
      const float vi = vt[i];
      float yi = 0.0f;
      for (int64_t j = 0; j < N; ++j) {
        row[j] = row[j] * wt[j] + sa * bt[j] + vi * kt[j];
        yi += row[j] * rt[j];
      }
      yt[i] = yi;
    }
  }
}

namespace {

// N = 64 with AVX-512: rows are independent, so a block of four state rows (16 registers) stays
// in registers for all T steps and the state is read and written once per call. Per step, the
// four rows' dot products S a and S r are reduced together. Same equations as the portable form;
// the sums are taken in 16-lane partials, so the rounding differs from it (both are tested against
// a float64 reference).
using internal::Reduce4;
constexpr int kRowsPerBlock = 4;

RWKV_TARGET_AVX512 void Head64Avx512(const float* r, const float* w, const float* k, const float* v,
                                     const float* a, const float* b, int64_t T, int64_t off,
                                     int64_t stride, float* state_h, float* y) {
  constexpr int64_t N = 64;
  for (int64_t i0 = 0; i0 < N; i0 += kRowsPerBlock) {
    __m512 s[kRowsPerBlock][4];
    for (int ii = 0; ii < kRowsPerBlock; ++ii) {
      for (int q = 0; q < 4; ++q) s[ii][q] = _mm512_loadu_ps(state_h + (i0 + ii) * N + 16 * q);
    }
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = t * stride + off;
      __m512 av[4], partial[kRowsPerBlock];
      for (int q = 0; q < 4; ++q) av[q] = _mm512_loadu_ps(a + o + 16 * q);
      for (int ii = 0; ii < kRowsPerBlock; ++ii) {
        partial[ii] = _mm512_mul_ps(s[ii][0], av[0]);
        for (int q = 1; q < 4; ++q) partial[ii] = _mm512_fmadd_ps(s[ii][q], av[q], partial[ii]);
      }
      alignas(16) float sa[4];
      _mm_store_ps(sa, Reduce4(partial[0], partial[1], partial[2], partial[3]));
      for (int ii = 0; ii < kRowsPerBlock; ++ii) {
        const __m512 sab = _mm512_set1_ps(sa[ii]), vi = _mm512_set1_ps(v[o + i0 + ii]);
        for (int q = 0; q < 4; ++q) {
          // S[i, j] = S[i, j] w[j] + s_i b[j] + v[i] k[j]
          const __m512 upd = _mm512_fmadd_ps(sab, _mm512_loadu_ps(b + o + 16 * q),
                                             _mm512_mul_ps(vi, _mm512_loadu_ps(k + o + 16 * q)));
          s[ii][q] = _mm512_fmadd_ps(s[ii][q], _mm512_loadu_ps(w + o + 16 * q), upd);
        }
        partial[ii] = _mm512_mul_ps(s[ii][0], _mm512_loadu_ps(r + o));
        for (int q = 1; q < 4; ++q) {
          partial[ii] = _mm512_fmadd_ps(s[ii][q], _mm512_loadu_ps(r + o + 16 * q), partial[ii]);
        }
      }
      _mm_storeu_ps(y + o + i0, Reduce4(partial[0], partial[1], partial[2], partial[3]));
    }
    for (int ii = 0; ii < kRowsPerBlock; ++ii) {
      for (int q = 0; q < 4; ++q) _mm512_storeu_ps(state_h + (i0 + ii) * N + 16 * q, s[ii][q]);
    }
  }
}

}  // namespace

void DeltaRuleHead(const float* r, const float* w, const float* k, const float* v, const float* a,
                   const float* b, int64_t T, int64_t h, int64_t N, int64_t stride, float* state_h,
                   float* y) {
  // The active kernel level (kernels/dispatch.h): the CPU's, or capped by a forced GEMM path.
  if (N == 64 && ActiveKernelIsa() == KernelIsa::kAvx512) {
    Head64Avx512(r, w, k, v, a, b, T, h * N, stride, state_h, y);
  } else {
    DeltaRuleHeadPortable(r, w, k, v, a, b, T, h, N, stride, state_h, y);
  }
}

void DeltaRule(const float* r, const float* w, const float* k, const float* v, const float* a,
               const float* b, std::span<const int64_t> offsets, int64_t heads, int64_t N,
               float* const* states, float* y) {
  const auto n_seq = static_cast<int64_t>(offsets.size()) - 1;
  const int64_t stride = heads * N;
  const int64_t rows = n_seq > 0 ? offsets[n_seq] : 0;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (rows * stride > (1 << 15))
  for (int64_t s = 0; s < n_seq; ++s) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t o = offsets[s] * stride;
      DeltaRuleHead(r + o, w + o, k + o, v + o, a + o, b + o, offsets[s + 1] - offsets[s], h, N,
                    stride, states[s] + h * N * N, y + o);
    }
  }
}

}  // namespace rwkv_embed::kernels
