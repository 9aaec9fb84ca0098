#include "kernels/linear_attention.h"

#include <immintrin.h>

#include "kernels/gemm_simd.h"
#include "kernels/kernel_table.h"

namespace rwkv_embed::kernels {
namespace {

// Portable form: for every step, every key channel i updates its state row and adds its term to
// y_t. The state (S x S floats, 16 KiB at S = 64) goes through L1 once per step. Inlined into
// each ISA's entry point (head sizes other than 64), where it is vectorized for that level.
[[gnu::always_inline]] inline void HeadAnyS(const float* r, const float* k, const float* v,
                                            const float* d, const float* u, int64_t T, int64_t off,
                                            int64_t S, int64_t stride, float* state_h, float* y) {
  for (int64_t t = 0; t < T; ++t) {
    const float* rt = r + t * stride + off;
    const float* kt = k + t * stride + off;
    const float* vt = v + t * stride + off;
    const float* dt = d + t * stride + off;
    float* yt = y + t * stride + off;
    for (int64_t j = 0; j < S; ++j) yt[j] = 0.0f;
    for (int64_t i = 0; i < S; ++i) {
      const float ri = rt[i], ki = kt[i], di = dt[i], rui = ri * u[off + i] * ki;
      float* m = state_h + i * S;
#pragma omp simd
      for (int64_t j = 0; j < S; ++j) {
        yt[j] += rui * vt[j] + ri * m[j];
        m[j] = ki * vt[j] + di * m[j];
      }
    }
  }
}

// S = 64 with AVX-512: the same arithmetic in the same order per element, but four state rows
// (16 registers) stay in registers for all T steps, so the state is read and written once per
// call instead of once per step; y_t takes the rows' terms block after block, in row order.
constexpr int kRowsPerBlock = 4;

RWKV_TARGET_AVX512 void Head64Avx512(const float* r, const float* k, const float* v, const float* d,
                                     const float* u, int64_t T, int64_t off, int64_t stride,
                                     float* state_h, float* y) {
  constexpr int64_t S = 64;
  for (int64_t t = 0; t < T; ++t) {
    float* yt = y + t * stride + off;
    for (int q = 0; q < 4; ++q) _mm512_storeu_ps(yt + 16 * q, _mm512_setzero_ps());
  }
  for (int64_t i0 = 0; i0 < S; i0 += kRowsPerBlock) {
    __m512 m[kRowsPerBlock][4];
    for (int ii = 0; ii < kRowsPerBlock; ++ii) {
      for (int q = 0; q < 4; ++q) m[ii][q] = _mm512_loadu_ps(state_h + (i0 + ii) * S + 16 * q);
    }
    for (int64_t t = 0; t < T; ++t) {
      const int64_t base = t * stride + off + i0;
      const float* vt = v + t * stride + off;
      float* yt = y + t * stride + off;
      __m512 vv[4], yy[4];
      for (int q = 0; q < 4; ++q) {
        vv[q] = _mm512_loadu_ps(vt + 16 * q);
        yy[q] = _mm512_loadu_ps(yt + 16 * q);
      }
      for (int ii = 0; ii < kRowsPerBlock; ++ii) {
        const float ri = r[base + ii], ki = k[base + ii], di = d[base + ii];
        const __m512 rv = _mm512_set1_ps(ri), kv = _mm512_set1_ps(ki), dv = _mm512_set1_ps(di);
        const __m512 ruv = _mm512_set1_ps(ri * u[off + i0 + ii] * ki);
        for (int q = 0; q < 4; ++q) {
          // y += rui * v + ri * m;  m = ki * v + di * m
          yy[q] = _mm512_add_ps(yy[q], _mm512_fmadd_ps(rv, m[ii][q], _mm512_mul_ps(ruv, vv[q])));
          m[ii][q] = _mm512_fmadd_ps(dv, m[ii][q], _mm512_mul_ps(kv, vv[q]));
        }
      }
      for (int q = 0; q < 4; ++q) _mm512_storeu_ps(yt + 16 * q, yy[q]);
    }
    for (int ii = 0; ii < kRowsPerBlock; ++ii) {
      for (int q = 0; q < 4; ++q) _mm512_storeu_ps(state_h + (i0 + ii) * S + 16 * q, m[ii][q]);
    }
  }
}

// The AVX2 form of Head64Avx512: 16 registers do not hold four full state rows (32 YMM), so the
// 64 value columns are taken 16 at a time (2 YMM), with four state rows (8 YMM) in registers for
// all T steps. Per element the arithmetic and its order are those of Head64Avx512 (row terms added
// to y_t in row order).
constexpr int64_t kColsPerBlockAvx2 = 16;

RWKV_TARGET_AVX2 void Head64Avx2(const float* r, const float* k, const float* v, const float* d,
                                 const float* u, int64_t T, int64_t off, int64_t stride,
                                 float* state_h, float* y) {
  constexpr int64_t S = 64;
  for (int64_t t = 0; t < T; ++t) {
    float* yt = y + t * stride + off;
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(yt + 8 * q, _mm256_setzero_ps());
  }
  for (int64_t j0 = 0; j0 < S; j0 += kColsPerBlockAvx2) {
    for (int64_t i0 = 0; i0 < S; i0 += kRowsPerBlock) {
      __m256 m[kRowsPerBlock][2];
      for (int ii = 0; ii < kRowsPerBlock; ++ii) {
        for (int q = 0; q < 2; ++q) {
          m[ii][q] = _mm256_loadu_ps(state_h + (i0 + ii) * S + j0 + 8 * q);
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        const int64_t base = t * stride + off + i0;
        const float* vt = v + t * stride + off + j0;
        float* yt = y + t * stride + off + j0;
        __m256 vv[2], yy[2];
        for (int q = 0; q < 2; ++q) {
          vv[q] = _mm256_loadu_ps(vt + 8 * q);
          yy[q] = _mm256_loadu_ps(yt + 8 * q);
        }
        for (int ii = 0; ii < kRowsPerBlock; ++ii) {
          const float ri = r[base + ii], ki = k[base + ii], di = d[base + ii];
          const __m256 rv = _mm256_set1_ps(ri), kv = _mm256_set1_ps(ki), dv = _mm256_set1_ps(di);
          const __m256 ruv = _mm256_set1_ps(ri * u[off + i0 + ii] * ki);
          for (int q = 0; q < 2; ++q) {
            yy[q] = _mm256_add_ps(yy[q], _mm256_fmadd_ps(rv, m[ii][q], _mm256_mul_ps(ruv, vv[q])));
            m[ii][q] = _mm256_fmadd_ps(dv, m[ii][q], _mm256_mul_ps(kv, vv[q]));
          }
        }
        for (int q = 0; q < 2; ++q) _mm256_storeu_ps(yt + 8 * q, yy[q]);
      }
      for (int ii = 0; ii < kRowsPerBlock; ++ii) {
        for (int q = 0; q < 2; ++q) {
          _mm256_storeu_ps(state_h + (i0 + ii) * S + j0 + 8 * q, m[ii][q]);
        }
      }
    }
  }
}

}  // namespace

namespace internal {

void WkvHeadPortable(const float* r, const float* k, const float* v, const float* d, const float* u,
                     int64_t T, int64_t off, int64_t S, int64_t stride, float* state_h, float* y) {
  HeadAnyS(r, k, v, d, u, T, off, S, stride, state_h, y);
}

RWKV_TARGET_AVX2 void WkvHeadAvx2(const float* r, const float* k, const float* v, const float* d,
                                  const float* u, int64_t T, int64_t off, int64_t S, int64_t stride,
                                  float* state_h, float* y) {
  if (S == 64) {
    Head64Avx2(r, k, v, d, u, T, off, stride, state_h, y);
  } else {
    HeadAnyS(r, k, v, d, u, T, off, S, stride, state_h, y);
  }
}

RWKV_TARGET_AVX512 void WkvHeadAvx512(const float* r, const float* k, const float* v,
                                      const float* d, const float* u, int64_t T, int64_t off,
                                      int64_t S, int64_t stride, float* state_h, float* y) {
  if (S == 64) {
    Head64Avx512(r, k, v, d, u, T, off, stride, state_h, y);
  } else {
    HeadAnyS(r, k, v, d, u, T, off, S, stride, state_h, y);
  }
}

}  // namespace internal

void LinearAttentionHead(const float* r, const float* k, const float* v, const float* d,
                         const float* u, int64_t T, int64_t h, int64_t S, int64_t stride,
                         float* state_h, float* y) {
  internal::ActiveKernels().wkv_head(r, k, v, d, u, T, h * S, S, stride, state_h, y);
}

void LinearAttention(const float* r, const float* k, const float* v, const float* d, const float* u,
                     int64_t T, int64_t heads, int64_t S, int64_t stride, float* state, float* y) {
  for (int64_t h = 0; h < heads; ++h) {
    LinearAttentionHead(r, k, v, d, u, T, h, S, stride, state + h * S * S, y);
  }
}

}  // namespace rwkv_embed::kernels
