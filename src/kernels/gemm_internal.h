// Internal entry points of the GEMM paths (see gemm.h). Each computes
//   y[i, j] = sum_c x[i, c] * W[j, c]   for i < m, j < w.rows,
// with x row-major (leading dimension w.cols) and y row-major with leading dimension ldy, so a
// caller can hand a block of W's rows to one path and write the matching columns of y.
#pragma once

#include <cstdint>

#include "kernels/gemm.h"

namespace rwkv_embed::kernels::internal {

struct CpuFeatures {
  bool avx512 = false;       // AVX-512 F/BW/VL/DQ + FMA, with OS support for ZMM state
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16)
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16 with XTILEDATA permission granted
};

// Detected once (cpuid/xgetbv + arch_prctl for AMX), then cached.
const CpuFeatures& DetectCpuFeatures();

// Configures all 8 AMX tiles as 16 rows x 64 bytes (palette 1) for the calling thread, and
// releases them. Requires DetectCpuFeatures().amx_bf16.
void ConfigureAmxTiles();
void ReleaseAmxTiles();

void GemmPortable(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy,
                  bool round_x_to_bf16);
void GemmAvx512F32(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);
void GemmAvx512Bf16(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);
void GemmAmxBf16(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);

// Problems smaller than this many multiply-adds run on one thread: waking the OpenMP team
// (microseconds when idle, milliseconds on a loaded machine) costs more than it saves. Chosen as
// roughly 30-50 us of single-thread work at each path's measured speed (~130 GFLOP/s FP32,
// ~600 GFLOP/s AMX).
inline constexpr int64_t kMinParallelMacs = int64_t{1} << 21;
inline constexpr int64_t kMinParallelMacsAmx = int64_t{1} << 23;

}  // namespace rwkv_embed::kernels::internal
