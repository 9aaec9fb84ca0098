// Linear attention with a per-channel, per-step decay and a "bonus" for the current step: the
// recurrence behind RWKV-6's WKV (Peng et al. 2024, "Eagle and Finch", eq. 19-20), written here
// without reference to any model. Per head h with key/value size S and state M in R^{S x S}:
//   y_t[j] = sum_i r_t[i] * (u[i] * k_t[i] * v_t[j] + M[i][j])
//   M[i][j] <- k_t[i] * v_t[j] + d_t[i] * M[i][j]
#pragma once

#include <cstdint>

namespace rwkv_embed::kernels {

// One sequence of T steps for `heads` heads. r, k, v, d, y: [T, heads*S] with row stride `stride`
// floats; u: [heads*S]; state: [heads, S, S] (row i = key channel, column j = value channel),
// read as the initial state and overwritten with the final one. Single-threaded: callers
// parallelise over sequences and heads (see LinearAttentionHead).
void LinearAttention(const float* r, const float* k, const float* v, const float* d, const float* u,
                     int64_t T, int64_t heads, int64_t S, int64_t stride, float* state, float* y);

// The same recurrence for a single head `h` (pointers are to the start of the sequence's rows).
void LinearAttentionHead(const float* r, const float* k, const float* v, const float* d,
                         const float* u, int64_t T, int64_t h, int64_t S, int64_t stride,
                         float* state_h, float* y);

}  // namespace rwkv_embed::kernels
