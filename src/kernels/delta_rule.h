// Linear attention with the generalised delta rule (the WKV of RWKV-7 "Goose"; fla's
// fused_recurrent_rwkv7, BlinkDL's wkv7 kernels), written without reference to any model. Per
// head with state S in R^{N x N} indexed [value i, key j]:
//   S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T      (every term uses S_{t-1})
//   y_t = S_t r_t
// i.e. per value row i: s_i = sum_j S[i,j] a[j];  S[i,j] = S[i,j] w[j] + s_i b[j] + v[i] k[j];
// y[i] = sum_j S[i,j] r[j]. Rows are independent of each other.
#pragma once

#include <cstdint>
#include <span>

namespace rwkv_embed::kernels {

// One sequence of T steps, one head h. r, w, k, v, a, b, y: [T, heads * N] with row stride
// `stride` floats, pointers to the sequence's first row; state_h: [N, N], read as the initial
// state and overwritten with the final one. Single-threaded.
void DeltaRuleHead(const float* r, const float* w, const float* k, const float* v, const float* a,
                   const float* b, int64_t T, int64_t h, int64_t N, int64_t stride, float* state_h,
                   float* y);

// Portable scalar form of DeltaRuleHead (sums in index order); DeltaRuleHead uses an AVX-512 form
// for N = 64 where the CPU has it. For tests.
void DeltaRuleHeadPortable(const float* r, const float* w, const float* k, const float* v,
                           const float* a, const float* b, int64_t T, int64_t h, int64_t N,
                           int64_t stride, float* state_h, float* y);

// Sequences packed end to end (segment s = rows [offsets[s], offsets[s+1])), every head, split
// across threads by (sequence, head). states[s]: [heads, N, N] of sequence s, in and out.
void DeltaRule(const float* r, const float* w, const float* k, const float* v, const float* a,
               const float* b, std::span<const int64_t> offsets, int64_t heads, int64_t N,
               float* const* states, float* y);

}  // namespace rwkv_embed::kernels
