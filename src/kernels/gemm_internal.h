// Internal entry points of the GEMM paths (see gemm.h). Each computes
//   y[i, j] = sum_c x[i, c] * W[j, c]   for i < m, j < w.rows,
// with x row-major (leading dimension w.cols) and y row-major with leading dimension ldy, so a
// caller can hand a block of W's rows to one path and write the matching columns of y.
#pragma once

#include <cstdint>

#include "kernels/cpu.h"
#include "kernels/gemm.h"

namespace rwkv_embed::kernels::internal {

// Configures all 8 AMX tiles as 16 rows x 64 bytes (palette 1) for the calling thread, and
// releases them. Requires DetectCpuFeatures().amx_bf16.
void ConfigureAmxTiles();
void ReleaseAmxTiles();

void GemmPortable(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy,
                  bool round_x_to_bf16);
void GemmAvx2F32(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);
void GemmAvx512F32(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);
void GemmAvx512Bf16(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);
void GemmAmxBf16(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);

// oneDNN matmul (gemm_onednn.cc); y has leading dimension w.rows. `bf16`: BF16 weights and x
// rounded to BF16, else F32 weights and x. Available only where OneDnnAvailable(bf16).
bool OneDnnAvailable(bool bf16);
void GemmOneDnn(const float* x, int64_t m, const WeightMatrix& w, float* y, bool bf16);
// At most this many oneDNN primitives (one per (m, n, k, dtype)) are kept; OneDnnCachedPrimitives
// says how many are now (0 without oneDNN).
inline constexpr size_t kOneDnnPrimitiveCacheCapacity = 64;
size_t OneDnnCachedPrimitives();

// The measured choice for this problem (gemm_autotune.cc): looked up, or measured now.
GemmPath AutotunedPath(int64_t m, const WeightMatrix& w, MatMulPrecision precision);

// Problems smaller than this many multiply-adds run on one thread: waking the OpenMP team
// (microseconds when idle, milliseconds on a loaded machine) costs more than it saves. Chosen as
// roughly 30-50 us of single-thread work at each path's measured speed (~130 GFLOP/s FP32,
// ~600 GFLOP/s AMX).
inline constexpr int64_t kMinParallelMacs = int64_t{1} << 21;
inline constexpr int64_t kMinParallelMacsAmx = int64_t{1} << 23;

}  // namespace rwkv_embed::kernels::internal
