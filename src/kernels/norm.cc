#include "kernels/norm.h"

#include <cmath>

#include "kernels/gemm_simd.h"
#include "kernels/kernel_table.h"

namespace rwkv_embed::kernels {
namespace {

// One body for every ISA level: inlined into each target-specific wrapper below, where the
// compiler vectorizes it for that level (statistics in double, as before).
[[gnu::always_inline]] inline void NormalizeSlice(const float* x, int64_t n, const float* weight,
                                                  const float* bias, double eps, float* out) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < n; ++c) sum += x[c];
  const double mean = sum / static_cast<double>(n);
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < n; ++c) {
    const double d = x[c] - mean;
    ss += d * d;
  }
  const auto inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  const auto fmean = static_cast<float>(mean);
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) out[c] = (x[c] - fmean) * inv * weight[c] + bias[c];
}

}  // namespace

namespace internal {

void NormSlicePortable(const float* x, int64_t n, const float* weight, const float* bias,
                       double eps, float* out) {
  NormalizeSlice(x, n, weight, bias, eps, out);
}
RWKV_TARGET_AVX2 void NormSliceAvx2(const float* x, int64_t n, const float* weight,
                                    const float* bias, double eps, float* out) {
  NormalizeSlice(x, n, weight, bias, eps, out);
}
RWKV_TARGET_AVX512 void NormSliceAvx512(const float* x, int64_t n, const float* weight,
                                        const float* bias, double eps, float* out) {
  NormalizeSlice(x, n, weight, bias, eps, out);
}

}  // namespace internal

void LayerNormRows(const float* x, int64_t rows, int64_t dim, const float* weight,
                   const float* bias, double eps, float* out) {
  const internal::NormSliceFn slice = internal::ActiveKernels().norm_slice;
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) slice(x + r * dim, dim, weight, bias, eps, out + r * dim);
}

void GroupNormRows(const float* x, int64_t rows, int64_t groups, int64_t group_size,
                   const float* weight, const float* bias, double eps, float* out) {
  const internal::NormSliceFn slice = internal::ActiveKernels().norm_slice;
  const int64_t dim = groups * group_size;
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t o = r * dim + g * group_size;
      slice(x + o, group_size, weight + g * group_size, bias + g * group_size, eps, out + o);
    }
  }
}

}  // namespace rwkv_embed::kernels
