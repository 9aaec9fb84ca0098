// AVX-512 GEMM paths: FP32 math through an outer-product panel kernel (RunPanelGemm), and BF16
// math through vdpbf16ps dot-product tiles (machines with AVX512-BF16 but no AMX).
//
// Dot-product tiles, y[i, j] = <x_i, W_j> vectorized along k: W is used exactly as stored ([n, k],
// row-major, F32 or BF16): an MR x NR tile of outputs keeps MR*NR vector accumulators, each k step
// loads NR weight vectors and MR activation vectors and issues MR*NR FMAs (or vdpbf16ps), and the
// accumulators are reduced horizontally once per k block. Only x is repacked (per m block, shared
// by the threads), never W: peak memory stays at the stored weight bytes. Loop nest per thread
// (threads split the n tiles):
//   for m block (mc rows of x, packed)  for k block (kc)  for n tile (NR rows of W, L1)
//     for m tile (MR rows of x, L1/L2)  micro-kernel
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <utility>

#include "core/matrix.h"
#include "kernels/gemm_internal.h"
#include "kernels/gemm_simd.h"

namespace rwkv_embed::kernels::internal {
namespace {

using MicroFn = void (*)(const void* x, int64_t ldx, const void* w, int64_t ldw, int64_t kc,
                         float* y, int64_t ldy, bool accumulate);

// y[i, 0:NR] (+)= row sums of acc[i][0:NR].
template <int MR, int NR>
RWKV_TARGET_AVX512 inline void StoreTile(const __m512 (&acc)[MR][NR], float* y, int64_t ldy,
                                         bool accumulate) {
  static_assert(NR >= 1 && NR <= 4);
  const __m512 z = _mm512_setzero_ps();
  const __mmask8 mask = static_cast<__mmask8>((1u << NR) - 1);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    __m128 s = Reduce4(acc[i][0], NR > 1 ? acc[i][NR > 1 ? 1 : 0] : z,
                       NR > 2 ? acc[i][NR > 2 ? 2 : 0] : z, NR > 3 ? acc[i][NR > 3 ? 3 : 0] : z);
    if (accumulate) s = _mm_add_ps(s, _mm_maskz_loadu_ps(mask, y + i * ldy));
    _mm_mask_storeu_ps(y + i * ldy, mask, s);
  }
}

// ---- BF16 weights, BF16 math (vdpbf16ps) -----------------------------------------------------
// vdpbf16ps: acc[l] += x[2l]*w[2l] + x[2l+1]*w[2l+1] (products exact in FP32, RNE accumulate,
// subnormals flushed), so x only needs converting to BF16 in its natural order.
struct Bf16Kernel {
  static constexpr int kMR = 6, kNR = 4;
  static constexpr int64_t kKc = 2048, kMc = 256;
  static constexpr bool kPacks = true;
  using XType = uint16_t;
  using WType = uint16_t;
  static int64_t PackedLd(int64_t k) { return (k + 31) / 32 * 32; }
  static void PackRow(const float* src, int64_t k, int64_t kpad, XType* dst) {
    PackRowBf16(src, k, kpad, dst);
  }

  template <int MR, int NR>
  RWKV_TARGET_AVX512_BF16 static void Micro(const void* xv, int64_t ldx, const void* wv,
                                            int64_t ldw, int64_t kc, float* y, int64_t ldy,
                                            bool accumulate) {
    const auto* x = static_cast<const uint16_t*>(xv);
    const auto* w = static_cast<const uint16_t*>(wv);
    __m512 acc[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; p += 32) {
      const __mmask32 mask =
          kc - p >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((1u << (kc - p)) - 1);
      __m512i wr[NR];
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) wr[j] = _mm512_maskz_loadu_epi16(mask, w + j * ldw + p);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512i xr = _mm512_loadu_si512(x + i * ldx + p);
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
          acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)xr, (__m512bh)wr[j]);
        }
      }
    }
    StoreTile<MR, NR>(acc, y, ldy, accumulate);
  }
};

template <class K, size_t... I>
constexpr std::array<MicroFn, sizeof...(I)> MakeMicroTable(std::index_sequence<I...> /*seq*/) {
  return {
      &K::template Micro<static_cast<int>(I) / K::kNR + 1, static_cast<int>(I) % K::kNR + 1>...};
}

template <class K>
void RunDotGemm(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  constexpr int kMR = K::kMR, kNR = K::kNR;
  static constexpr auto kTable = MakeMicroTable<K>(std::make_index_sequence<kMR * kNR>());
  const int64_t n = w.rows, k = w.cols;
  const auto* wp = static_cast<const typename K::WType*>(w.data);
  const int64_t ldx = K::PackedLd(k);
  const int64_t mc = std::min<int64_t>(K::kMc, m);
  AlignedVector<typename K::XType> xp(K::kPacks ? static_cast<size_t>(mc * ldx) : 0);
  const int64_t n_tiles = (n + kNR - 1) / kNR;
#pragma omp parallel if (m * n * k >= kMinParallelMacs)
  for (int64_t mb = 0; mb < m; mb += mc) {
    const int64_t rows = std::min(mc, m - mb);
    const typename K::XType* xb = nullptr;
    if constexpr (K::kPacks) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < rows; ++i) K::PackRow(x + (mb + i) * k, k, ldx, xp.data() + i * ldx);
      xb = xp.data();
    } else {
      xb = x + mb * k;
    }
    for (int64_t kb = 0; kb < k; kb += K::kKc) {
      const int64_t kl = std::min<int64_t>(K::kKc, k - kb);
      // Same static split for every k block, so each thread accumulates only into its own
      // columns of y and no barrier is needed between k blocks.
#pragma omp for schedule(static) nowait
      for (int64_t jt = 0; jt < n_tiles; ++jt) {
        const int64_t j0 = jt * kNR;
        const int nr = static_cast<int>(std::min<int64_t>(kNR, n - j0));
        for (int64_t i0 = 0; i0 < rows; i0 += kMR) {
          const int mr = static_cast<int>(std::min<int64_t>(kMR, rows - i0));
          kTable[(mr - 1) * kNR + (nr - 1)](xb + i0 * ldx + kb, ldx, wp + j0 * k + kb, k, kl,
                                            y + (mb + i0) * ldy + j0, ldy, kb > 0);
        }
      }
    }
#pragma omp barrier  // the next m block repacks xp
  }
}

// ---- Panel path for FP32 math ------------------------------------------------
// The dot-product tiles above reuse each loaded vector only 4-6 times, so for large m they are
// bound by L2 bandwidth, not by the FMA units. This is the GotoBLAS/BLIS outer-product scheme
// instead: a 32-column panel of W^T for one k block is widened/transposed into a per-thread
// buffer Bp[kc][32] (32 KiB, L1-resident; a scratch of 32 rows, never a copy of W), and a 12 x 32
// micro-tile does, per k, 2 vector loads + 12 broadcasts of x for 24 FMAs.
constexpr int kPanelMR = 12;
constexpr int64_t kPanelKc = 256, kPanelMc = 40 * kPanelMR;

// bp[p * 32 + c] = W[c, p] for p < kl (rounded up to 16), c < 32; rows c >= valid are zero.
template <typename WType>
RWKV_TARGET_AVX512 void PackPanel(const WType* w, int64_t ldw, int valid, int64_t kl, float* bp) {
  for (int64_t p = 0; p < kl; p += 16) {
    const int64_t cnt = std::min<int64_t>(16, kl - p);
    const __mmask16 mask = static_cast<__mmask16>((1u << cnt) - 1);
    for (int h = 0; h < 2; ++h) {
      __m512 v[16];
      for (int r = 0; r < 16; ++r) {
        const int c = 16 * h + r;
        if (c >= valid) {
          v[r] = _mm512_setzero_ps();
        } else if constexpr (sizeof(WType) == 2) {
          const __m256i b = _mm256_maskz_loadu_epi16(mask, w + c * ldw + p);
          v[r] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
        } else {
          v[r] = _mm512_maskz_loadu_ps(mask, w + c * ldw + p);
        }
      }
      Transpose16x16(v);
      for (int q = 0; q < 16; ++q) _mm512_store_ps(bp + (p + q) * 32 + 16 * h, v[q]);
    }
  }
}

template <int MR>
RWKV_TARGET_AVX512 void PanelMicro(const float* x, int64_t ldx, const float* bp, int64_t kl,
                                   float* y, int64_t ldy, __mmask16 m0, __mmask16 m1,
                                   bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t p = 0; p < kl; ++p) {
    const __m512 b0 = _mm512_load_ps(bp + p * 32);
    const __m512 b1 = _mm512_load_ps(bp + p * 32 + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(x[i * ldx + p]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (accumulate) {
      c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, y + i * ldy));
      c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, y + i * ldy + 16));
    }
    _mm512_mask_storeu_ps(y + i * ldy, m0, c0[i]);
    _mm512_mask_storeu_ps(y + i * ldy + 16, m1, c1[i]);
  }
}

using PanelMicroFn = void (*)(const float* x, int64_t ldx, const float* bp, int64_t kl, float* y,
                              int64_t ldy, __mmask16 m0, __mmask16 m1, bool accumulate);

template <size_t... I>
constexpr std::array<PanelMicroFn, sizeof...(I)> MakePanelTable(std::index_sequence<I...> /*s*/) {
  return {&PanelMicro<static_cast<int>(I) + 1>...};
}

template <typename WType>
void RunPanelGemm(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  static constexpr auto kTable = MakePanelTable(std::make_index_sequence<kPanelMR>());
  const int64_t n = w.rows, k = w.cols;
  const auto* wp = static_cast<const WType*>(w.data);
  const int64_t n_panels = (n + 31) / 32;
#pragma omp parallel if (m * n * k >= kMinParallelMacs)
  {
    AlignedVector<float> bp(static_cast<size_t>((kPanelKc + 15) / 16 * 16 * 32));
    for (int64_t mb = 0; mb < m; mb += kPanelMc) {
      const int64_t rows = std::min(kPanelMc, m - mb);
      for (int64_t kb = 0; kb < k; kb += kPanelKc) {
        const int64_t kl = std::min(kPanelKc, k - kb);
        // Same static split for every (m, k) block: each thread owns its columns of y.
#pragma omp for schedule(static) nowait
        for (int64_t jp = 0; jp < n_panels; ++jp) {
          const int64_t j0 = jp * 32;
          const int valid = static_cast<int>(std::min<int64_t>(32, n - j0));
          PackPanel(wp + j0 * k + kb, k, valid, kl, bp.data());
          const __mmask16 m0 = static_cast<__mmask16>(valid >= 16 ? 0xffff : (1u << valid) - 1);
          const __mmask16 m1 = static_cast<__mmask16>(valid >= 32  ? 0xffff
                                                      : valid > 16 ? (1u << (valid - 16)) - 1
                                                                   : 0);
          for (int64_t i0 = 0; i0 < rows; i0 += kPanelMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kPanelMR, rows - i0));
            kTable[mr - 1](x + (mb + i0) * k + kb, k, bp.data(), kl, y + (mb + i0) * ldy + j0, ldy,
                           m0, m1, kb > 0);
          }
        }
      }
    }
  }
}

}  // namespace

void GemmAvx512F32(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  assert(DetectCpuFeatures().avx512);
  // Always the panel kernel, even for small m where dot-product tiles were ~1.5x faster: every
  // output row is then the same sequential FMA chain over k whatever m is, so a sentence's
  // embedding is bit-identical however it is batched or chunked (tests/model_golden_test.cc).
  if (w.dtype == DType::kBF16) {
    RunPanelGemm<uint16_t>(x, m, w, y, ldy);
  } else {
    RunPanelGemm<float>(x, m, w, y, ldy);
  }
}

void GemmAvx512Bf16(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  assert(DetectCpuFeatures().avx512_bf16 && w.dtype == DType::kBF16);
  RunDotGemm<Bf16Kernel>(x, m, w, y, ldy);
}

}  // namespace rwkv_embed::kernels::internal
