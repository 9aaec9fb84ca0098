// Row-wise normalisations. Statistics are accumulated in double: it costs nothing next to the
// matrix products and keeps results within FP32 rounding of a float64 reference.
#pragma once

#include <cstdint>

namespace rwkv_embed::kernels {

// out[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias, over `dim` channels
// (torch.nn.functional.layer_norm, biased variance). x and out may alias.
void LayerNormRows(const float* x, int64_t rows, int64_t dim, const float* weight,
                   const float* bias, double eps, float* out);

// GroupNorm on each row independently: the row's `groups` contiguous slices of `group_size`
// channels are normalised separately, then the per-channel affine is applied
// (torch.nn.functional.group_norm on a [rows, groups*group_size] input). x and out may alias.
void GroupNormRows(const float* x, int64_t rows, int64_t groups, int64_t group_size,
                   const float* weight, const float* bias, double eps, float* out);

}  // namespace rwkv_embed::kernels
