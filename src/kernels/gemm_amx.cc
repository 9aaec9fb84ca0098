// AMX BF16 GEMM path. We compute the transposed product  y^T[n, m] = W[n, k] . x^T[k, m]  so that
// the stored weights are the AMX "A" operand and are loaded as they lie in the checkpoint (16 rows
// x 32 BF16 per tile, stride 2k bytes): no weight repacking, no extra weight memory. x becomes the
// "B" operand, which tdpbf16ps wants in VNNI layout: tile row r holds, for each of 16 columns c
// (tokens), the BF16 pair (x[c][2r], x[c][2r+1]) as one 32-bit lane (Intel SDM, TDPBF16PS). Each
// 16 x 16 FP32 result tile is y^T; it is transposed in registers on the way out.
//
// Tiles (8 registers of 16 rows x 64 bytes): C = tmm0..3 (2 n-tiles x 2 m-tiles), A = tmm4, tmm5
// (W), B = tmm6, tmm7 (x). Loop nest per thread (threads split pairs of n tiles):
//   for m block (mc tokens, packed once, shared)  for n pair  for m pair  for k (32 a step)
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "core/matrix.h"
#include "kernels/gemm_internal.h"
#include "kernels/gemm_simd.h"

namespace rwkv_embed::kernels::internal {
namespace {

// Packs tokens [0, valid) of a 16-token tile (x rows with stride k) into VNNI layout:
// dst[r * 16 + c] = (bf16 x[c][2r], bf16 x[c][2r+1]) for r < k/2; tokens >= valid are zero.
RWKV_TARGET_AMX void PackVnniTile(const float* x, int64_t k, int valid, uint32_t* dst) {
  alignas(64) uint16_t row[32];
  for (int64_t c = 0; c < k; c += 32) {
    __m512 v[16];
    for (int t = 0; t < 16; ++t) {
      if (t < valid) {
        PackRowBf16(x + t * k + c, 32, 32, row);
        v[t] = _mm512_load_ps(row);  // 16 BF16 pairs as 32-bit lanes
      } else {
        v[t] = _mm512_setzero_ps();
      }
    }
    Transpose16x16(v);  // v[r] = pair r of every token
    for (int r = 0; r < 16; ++r) _mm512_store_ps(dst + (c / 2 + r) * 16, v[r]);
  }
}

// C^T tile (16 n x 16 m floats at buf) -> y[m0 + i, n0 .. n0+16) for the first `valid_m` i.
RWKV_TARGET_AMX inline void StoreTransposed(const float* buf, int valid_m, float* y, int64_t ldy) {
  __m512 v[16];
  for (int r = 0; r < 16; ++r) v[r] = _mm512_load_ps(buf + 16 * r);
  Transpose16x16(v);
  for (int i = 0; i < valid_m; ++i) _mm512_storeu_ps(y + i * ldy, v[i]);
}

// NT n-tiles x MT m-tiles of output, full k. xt: packed x of the first m tile (each m tile is
// 16 * k/2 dwords); w: first W row of the first n tile.
template <int NT, int MT>
RWKV_TARGET_AMX void AmxBlock(const uint32_t* xt, const uint16_t* w, int64_t k, float* y,
                              int64_t ldy, int valid_m0, int valid_m1) {
  const int64_t wstride = k * 2;     // bytes between W rows
  const int64_t xtile = 16 * k / 2;  // dwords per packed m tile
  _tile_zero(0);
  if constexpr (MT == 2) _tile_zero(1);
  if constexpr (NT == 2) _tile_zero(2);
  if constexpr (NT == 2 && MT == 2) _tile_zero(3);
  for (int64_t c = 0; c < k; c += 32) {
    _tile_loadd(6, xt + c / 2 * 16, 64);
    _tile_loadd(4, w + c, wstride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (MT == 2) {
      _tile_loadd(7, xt + xtile + c / 2 * 16, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (NT == 2) {
      _tile_loadd(5, w + 16 * k + c, wstride);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (MT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  alignas(64) float buf[256];
  _tile_stored(0, buf, 64);
  StoreTransposed(buf, valid_m0, y, ldy);
  if constexpr (MT == 2) {
    _tile_stored(1, buf, 64);
    StoreTransposed(buf, valid_m1, y + 16 * ldy, ldy);
  }
  if constexpr (NT == 2) {
    _tile_stored(2, buf, 64);
    StoreTransposed(buf, valid_m0, y + 16, ldy);
    if constexpr (MT == 2) {
      _tile_stored(3, buf, 64);
      StoreTransposed(buf, valid_m1, y + 16 * ldy + 16, ldy);
    }
  }
}

// The tile part: rows [0, n16) of W (n16 a multiple of 16), k a multiple of 32.
void AmxTiles(const float* x, int64_t m, const uint16_t* w, int64_t n16, int64_t k, float* y,
              int64_t ldy) {
  // m block: its packed BF16 slice (mc * k * 2 bytes) should stay in L2 while the n pairs stream
  // past it. x is packed whole, once (m * k * 2 bytes: half the size of x itself), so the only
  // barrier is the one after packing; n pairs are handed out dynamically, so a thread that the
  // OS deschedules (a shared machine) does not hold the other one up at a static split.
  const int64_t mc = std::clamp<int64_t>((int64_t{1} << 20) / (2 * k) / 32 * 32, 32, 512);
  const int64_t m_tiles_all = (m + 15) / 16;
  AlignedVector<uint32_t> xp(static_cast<size_t>(m_tiles_all * 16 * k / 2));
  const int64_t n_pairs = (n16 / 16 + 1) / 2;
#pragma omp parallel if (m * n16 * k >= kMinParallelMacsAmx)
  {
#pragma omp for schedule(dynamic, 4)
    for (int64_t t = 0; t < m_tiles_all; ++t) {
      const int valid = static_cast<int>(std::min<int64_t>(16, m - 16 * t));
      PackVnniTile(x + 16 * t * k, k, valid, xp.data() + t * 16 * k / 2);
    }
    ConfigureAmxTiles();
    for (int64_t mb = 0; mb < m; mb += mc) {
      const int64_t rows = std::min(mc, m - mb);
      const int64_t m_tiles = (rows + 15) / 16;
      const uint32_t* xb = xp.data() + mb / 16 * 16 * k / 2;
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t np = 0; np < n_pairs; ++np) {
        const int64_t n0 = np * 32;
        const bool two_n = n0 + 32 <= n16;
        for (int64_t t = 0; t < m_tiles; t += 2) {
          const uint32_t* xt = xb + t * 16 * k / 2;
          float* yt = y + (mb + 16 * t) * ldy + n0;
          const int v0 = static_cast<int>(std::min<int64_t>(16, rows - 16 * t));
          if (t + 1 < m_tiles) {
            const int v1 = static_cast<int>(std::min<int64_t>(16, rows - 16 * (t + 1)));
            if (two_n) {
              AmxBlock<2, 2>(xt, w + n0 * k, k, yt, ldy, v0, v1);
            } else {
              AmxBlock<1, 2>(xt, w + n0 * k, k, yt, ldy, v0, v1);
            }
          } else if (two_n) {
            AmxBlock<2, 1>(xt, w + n0 * k, k, yt, ldy, v0, 0);
          } else {
            AmxBlock<1, 1>(xt, w + n0 * k, k, yt, ldy, v0, 0);
          }
        }
      }
    }
    ReleaseAmxTiles();
  }
}

}  // namespace

namespace {
// The 64-byte LDTILECFG operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
}  // namespace

RWKV_TARGET_AMX void ConfigureAmxTiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  // Not _tile_loadconfig(): GCC 12 declares its asm operand as an 8-byte object, so the optimizer
  // may drop the stores to the rest of the 64-byte config (then tilezero raises #UD). Naming the
  // whole struct as the memory operand keeps them.
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

RWKV_TARGET_AMX void ReleaseAmxTiles() { _tile_release(); }

void GemmAmxBf16(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  assert(DetectCpuFeatures().amx_bf16 && w.dtype == DType::kBF16);
  const int64_t n = w.rows, k = w.cols;
  const int64_t n16 = k % 32 == 0 ? n / 16 * 16 : 0;
  const auto* wb = static_cast<const uint16_t*>(w.data);
  if (n16 > 0) AmxTiles(x, m, wb, n16, k, y, ldy);
  if (n16 < n) {  // rows AMX tiles do not cover (or all of them when k % 32 != 0)
    const WeightMatrix rest{DType::kBF16, wb + n16 * k, n - n16, k};
    GemmAvx512Bf16(x, m, rest, y + n16, ldy);
  }
}

}  // namespace rwkv_embed::kernels::internal
