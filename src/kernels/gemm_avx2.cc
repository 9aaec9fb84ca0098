// AVX2 + FMA GEMM path (CPUs without AVX-512: Intel client cores, AMD before Zen 4): the
// outer-product panel scheme of the AVX-512 FP32 path at half the width. A 16-column panel of W^T
// for one k block is widened (BF16 -> FP32 by a 16-bit shift) and transposed into a per-thread
// buffer Bp[kc][16] (16 KiB, L1-resident; a scratch of 16 rows, never a copy of W), and a 6 x 16
// micro-tile does, per k, 2 vector loads + 6 broadcasts of x for 12 FMAs (12 accumulators + 3
// operands = 15 of the 16 YMM registers). FP32 arithmetic whatever the requested precision; every
// output is one sequential FMA chain over k, so rows do not depend on m or the thread count.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <utility>

#include "core/matrix.h"
#include "kernels/gemm_internal.h"
#include "kernels/gemm_simd.h"

namespace rwkv_embed::kernels::internal {
namespace {

constexpr int kMR = 6, kNR = 16;
constexpr int64_t kKc = 256, kMc = 40 * kMR;

// In-place transpose of an 8 x 8 block of floats held in 8 registers.
RWKV_TARGET_AVX2 void Transpose8x8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m256 s[8];
  for (int i = 0; i < 2; ++i) {
    s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

// 8 consecutive weights of one row, widened to FP32.
RWKV_TARGET_AVX2 inline __m256 Load8(const float* w) { return _mm256_loadu_ps(w); }
RWKV_TARGET_AVX2 inline __m256 Load8(const uint16_t* w) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16));
}
inline float Widen(float w) { return w; }
inline float Widen(uint16_t w) { return Bf16ToF32(w); }

// bp[p * 16 + c] = W[c, p] for p < kl, c < 16; rows c >= valid are zero.
template <typename WType>
RWKV_TARGET_AVX2 void PackPanel(const WType* w, int64_t ldw, int valid, int64_t kl, float* bp) {
  int64_t p = 0;
  if (valid == kNR) {
    for (; p + 8 <= kl; p += 8) {
      for (int h = 0; h < 2; ++h) {
        __m256 v[8];
        for (int r = 0; r < 8; ++r) v[r] = Load8(w + (8 * h + r) * ldw + p);
        Transpose8x8(v);
        for (int q = 0; q < 8; ++q) _mm256_store_ps(bp + (p + q) * kNR + 8 * h, v[q]);
      }
    }
  }
  for (; p < kl; ++p) {
    for (int c = 0; c < kNR; ++c) {
      // memcpy: checkpoint weights may sit at any address (an odd safetensors header is legal).
      WType v{};  // zero widens to 0.0f: the panel's padding columns
      if (c < valid) std::memcpy(&v, w + c * ldw + p, sizeof(v));
      bp[p * kNR + c] = Widen(v);
    }
  }
}

template <int MR>
RWKV_TARGET_AVX2 void Micro(const float* x, int64_t ldx, const float* bp, int64_t kl, float* y,
                            int64_t ldy, int valid, bool accumulate) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
#pragma GCC unroll 2
  for (int64_t p = 0; p < kl; ++p) {
    const __m256 b0 = _mm256_load_ps(bp + p * kNR);
    const __m256 b1 = _mm256_load_ps(bp + p * kNR + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(x + i * ldx + p);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
  }
  if (valid == kNR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      if (accumulate) {
        c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(y + i * ldy));
        c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(y + i * ldy + 8));
      }
      _mm256_storeu_ps(y + i * ldy, c0[i]);
      _mm256_storeu_ps(y + i * ldy + 8, c1[i]);
    }
    return;
  }
  // A partial panel (the last columns of y): through a buffer, same sums.
  // (Fully unrolled like the loops above: an indexed access would keep c0/c1 in memory, and the
  // k loop would then store all 12 accumulators every step.)
  alignas(32) float buf[kNR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(buf, c0[i]);
    _mm256_store_ps(buf + 8, c1[i]);
    for (int c = 0; c < valid; ++c) y[i * ldy + c] = accumulate ? y[i * ldy + c] + buf[c] : buf[c];
  }
}

using MicroFn = void (*)(const float* x, int64_t ldx, const float* bp, int64_t kl, float* y,
                         int64_t ldy, int valid, bool accumulate);

template <size_t... I>
constexpr std::array<MicroFn, sizeof...(I)> MakeTable(std::index_sequence<I...> /*seq*/) {
  return {&Micro<static_cast<int>(I) + 1>...};
}

template <typename WType>
void RunPanels(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  static constexpr auto kTable = MakeTable(std::make_index_sequence<kMR>());
  const int64_t n = w.rows, k = w.cols;
  const auto* wp = static_cast<const WType*>(w.data);
  const int64_t n_panels = (n + kNR - 1) / kNR;
#pragma omp parallel if (m * n * k >= kMinParallelMacs)
  {
    AlignedVector<float> bp(static_cast<size_t>(kKc * kNR));
    for (int64_t mb = 0; mb < m; mb += kMc) {
      const int64_t rows = std::min(kMc, m - mb);
      for (int64_t kb = 0; kb < k; kb += kKc) {
        const int64_t kl = std::min(kKc, k - kb);
        // Same static split for every (m, k) block: each thread owns its columns of y.
#pragma omp for schedule(static) nowait
        for (int64_t jp = 0; jp < n_panels; ++jp) {
          const int64_t j0 = jp * kNR;
          const int valid = static_cast<int>(std::min<int64_t>(kNR, n - j0));
          PackPanel(wp + j0 * k + kb, k, valid, kl, bp.data());
          for (int64_t i0 = 0; i0 < rows; i0 += kMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kMR, rows - i0));
            kTable[mr - 1](x + (mb + i0) * k + kb, k, bp.data(), kl, y + (mb + i0) * ldy + j0, ldy,
                           valid, kb > 0);
          }
        }
      }
    }
  }
}

}  // namespace

void GemmAvx2F32(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  assert(DetectCpuFeatures().avx2);
  if (w.dtype == DType::kBF16) {
    RunPanels<uint16_t>(x, m, w, y, ldy);
  } else {
    RunPanels<float>(x, m, w, y, ldy);
  }
}

}  // namespace rwkv_embed::kernels::internal
