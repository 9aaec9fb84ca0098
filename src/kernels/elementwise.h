// Element-wise and row-wise operations on activation matrices ([rows, cols], row-major, float).
// Each output element depends only on its own row, so results do not depend on how rows are
// batched, and never on the thread count. Large inputs are split across OpenMP threads here, so
// model code stays a sequence of equations. Knows nothing about RWKV.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/gemm.h"

namespace rwkv_embed::kernels {

// Embedding lookup: out[t] = float(table[ids[t]]) for a [V, C] table of F32 or BF16 (rows may be
// at any byte alignment). Ids must be in [0, V). out: [ids.size(), C].
void GatherRows(const WeightMatrix& table, std::span<const int32_t> ids, float* out);

// Segmented token shift: rows are sequences packed end to end, segment s = rows
// [offsets[s], offsets[s+1]). xx[t] = prev(t) - a[t], where prev(t) = a[t-1] inside a segment
// and first_prev[s] (a [cols] vector: the carried state, or zeros) at its first row.
void TokenShiftDelta(const float* a, int64_t cols, std::span<const int64_t> offsets,
                     const float* const* first_prev, float* xx);

// out = a + xx * mu (mu: [cols], broadcast over rows).
void MixRows(const float* a, const float* xx, const float* mu, int64_t rows, int64_t cols,
             float* out);

// x += d;  x *= m;  x = s * x   (n elements)
void AddInPlace(float* x, const float* d, int64_t n);
void MulInPlace(float* x, const float* m, int64_t n);
void ScaleInPlace(float* x, float s, int64_t n);

// out = x * v (v: [cols], broadcast over rows). x and out may alias.
void MulRowsByVector(const float* x, const float* v, int64_t rows, int64_t cols, float* out);

// x = tanh(x);  x = sigmoid(x + bias) (bias: [cols] or null);  x = relu(x)^2   (in place)
void TanhRows(float* x, int64_t rows, int64_t cols);
void SigmoidRows(float* x, int64_t rows, int64_t cols, const float* bias);
void ReluSquareInPlace(float* x, int64_t n);

// x = exp(-scale * sigmoid(x + bias)) (bias: [cols]): a decay factor in (exp(-scale), 1).
void ExpNegScaledSigmoidRows(float* x, int64_t rows, int64_t cols, const float* bias, float scale);

// x = x + (target - x) * t   (torch.lerp(x, target, t)), n elements.
void LerpInPlace(float* x, const float* target, const float* t, int64_t n);

// x = x * (1 + (t - 1) * mix)   (mix: [cols], broadcast): per channel, x scaled by a blend of 1
// and t.
void MulByBlendWithOne(float* x, const float* t, const float* mix, int64_t rows, int64_t cols);

// Each row's `groups` contiguous slices of `group_size` are divided by max(||slice||_2, eps)
// (torch.nn.functional.normalize, per group). Sums of squares in double.
void L2NormalizeGroups(float* x, int64_t rows, int64_t groups, int64_t group_size, double eps);

// Per row and group g of `group_size` channels: y[g] += (sum_j a[g,j] b[g,j] u[g,j]) * v[g]
// (u: [groups * group_size], broadcast over rows). Sums in double.
void AddGroupTripleDotTimes(float* y, const float* a, const float* b, const float* u,
                            const float* v, int64_t rows, int64_t groups, int64_t group_size);

}  // namespace rwkv_embed::kernels
