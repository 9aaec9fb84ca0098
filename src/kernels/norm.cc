#include "kernels/norm.h"

#include <cmath>

namespace rwkv_embed::kernels {
namespace {

inline void NormalizeSlice(const float* x, int64_t n, const float* weight, const float* bias,
                           double eps, float* out) {
  double sum = 0;
  for (int64_t c = 0; c < n; ++c) sum += x[c];
  const double mean = sum / static_cast<double>(n);
  double ss = 0;
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

void LayerNormRows(const float* x, int64_t rows, int64_t dim, const float* weight,
                   const float* bias, double eps, float* out) {
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    NormalizeSlice(x + r * dim, dim, weight, bias, eps, out + r * dim);
  }
}

void GroupNormRows(const float* x, int64_t rows, int64_t groups, int64_t group_size,
                   const float* weight, const float* bias, double eps, float* out) {
  const int64_t dim = groups * group_size;
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t o = r * dim + g * group_size;
      NormalizeSlice(x + o, group_size, weight + g * group_size, bias + g * group_size, eps,
                     out + o);
    }
  }
}

}  // namespace rwkv_embed::kernels
