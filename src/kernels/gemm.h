// Dense matrix products against stored weight matrices. Knows nothing about RWKV.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace rwkv_embed::kernels {

// A weight matrix W[n, k] (n outputs x k inputs, row-major) as stored in a checkpoint, in its
// stored dtype (F32 or BF16; F16 checkpoints are converted at load time).
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
enum class MatMulPrecision { kF32, kBF16 };

// y[m, n] = x[m, k] . W[n, k]^T   (torch.nn.functional.linear without bias).
// x and y are row-major with leading dimensions k and n; y is overwritten. Multi-threaded.
void MatMulT(const float* x, int64_t m, const WeightMatrix& w, float* y,
             MatMulPrecision precision = MatMulPrecision::kF32);

}  // namespace rwkv_embed::kernels
