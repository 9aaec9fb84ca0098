// Dense matrix products against stored weight matrices. Knows nothing about RWKV.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/dtype.h"

namespace rwkv_embed::kernels {

// A weight matrix W[n, k] (n outputs x k inputs, row-major) as stored in a checkpoint, in its
// stored dtype (F32 or BF16; F16 checkpoints are converted at load time). `data` may have any
// alignment (a tensor mapped from a file with an odd header length starts at an odd address):
// every path reads it with memcpy or unaligned vector loads, never through a typed pointer.
struct WeightMatrix {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;  // n
  int64_t cols = 0;  // k
};

// How the product is computed.
//  kF32:  weights widened to FP32, FP32 multiply-accumulate. Matches an FP32 reference.
//  kBF16: activations rounded to BF16, BF16 x BF16 products accumulated in FP32 (AVX512-BF16 /
//         AMX where present). Faster; error vs kF32 is bounded by BF16 rounding of x (~2^-9 rel).
//         kBF16 is a permission, not a promise: with F32 weights, or without AMX (where FP32 FMA
//         measured faster), MatMulT computes exactly as kF32.
enum class MatMulPrecision { kF32, kBF16 };

// y[m, n] = x[m, k] . W[n, k]^T   (torch.nn.functional.linear without bias).
// x and y are row-major with leading dimensions k and n; y is overwritten. Multi-threaded
// (OpenMP, split over n). Works straight from the stored (e.g. mmap'd) weights: no copy of W is
// made, only x is repacked into a per-call scratch buffer.
void MatMulT(const float* x, int64_t m, const WeightMatrix& w, float* y,
             MatMulPrecision precision = MatMulPrecision::kF32);

// ---- Implementation paths (for tests and benchmarks; MatMulT picks one itself) ----------------
//  kPortable:   plain C++ (auto-vectorized) for any CPU; kBF16 rounds x to BF16 first.
//  kAvx512F32:  AVX-512F FMA. m >= 32: 12 x 32 outer-product panels over a per-thread widened
//               32-row slice of W (32 KiB scratch); m < 32: dot-product tiles straight from W.
//               Always FP32 arithmetic, whatever the requested precision.
//  kAvx512Bf16: AVX512-BF16 `vdpbf16ps` dot-product tiles. BF16 weights only. Never chosen by
//               MatMulT (measured slower than kAvx512F32); finishes the rows AMX tiles leave.
//  kAmxBf16:    AMX `tdpbf16ps` tiles with W as the A operand (no weight repacking). BF16 weights
//               only; rows/cols not covered by 16x32 tiles are finished by kAvx512Bf16.
enum class GemmPath { kAuto, kPortable, kAvx512F32, kAvx512Bf16, kAmxBf16 };

std::string_view GemmPathName(GemmPath path);

// Whether this CPU and OS can run `path` (AMX also needs the kernel's XTILEDATA permission, which
// this requests once).
bool GemmPathAvailable(GemmPath path);

// The path MatMulT uses for this problem (never kAuto).
GemmPath SelectGemmPath(int64_t m, const WeightMatrix& w, MatMulPrecision precision);

// MatMulT forced onto `path` (kAuto = MatMulT). Throws UsageError when the path is unavailable on
// this machine or cannot take this weight dtype (the BF16 paths need BF16 weights).
void MatMulTWithPath(GemmPath path, const float* x, int64_t m, const WeightMatrix& w, float* y,
                     MatMulPrecision precision = MatMulPrecision::kF32);

}  // namespace rwkv_embed::kernels
