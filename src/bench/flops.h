// Floating-point work of the embedding forward pass, counted from the model shape, so that a
// measured time becomes an achieved GFLOP/s comparable with the machine's GEMM peak.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace rwkv_embed::bench {

// Weights every token is multiplied by in one block: the time-mix projections r, k, v, g
// ([A, C] each) and output ([C, A]); the token-shift LoRA (W1: C x 5E, W2: 5 x E x C) and the decay
// LoRA (D1: C x D, D2: D x A); the channel-mix key ([F, C]), value ([C, F]) and receptance ([C,
// C]). Requires the LoRA ranks (set by ModelWeights::Load and the presets); UsageError when they
// are 0.
int64_t ProjectionParamsPerBlock(const ModelConfig& c);

// ProjectionParamsPerBlock * L. The LM head and the embedding lookup are excluded: the embedding
// forward never computes logits, and a lookup is a copy, not arithmetic.
int64_t ProjectionParams(const ModelConfig& c);

// The WKV recurrence of one block for one token (DESIGN.md §7, kernels::LinearAttentionHead):
// per head and per state element (i, j) of the S x S state, two multiply-adds for the output
// y_j += (r_i u_i k_i) v_j + r_i S_ij and two for the update S_ij = k_i v_j + d_i S_ij,
// i.e. 8 FLOPs x H x S x S = 8 x A x S.
int64_t WkvFlopsPerTokenPerBlock(const ModelConfig& c);

// FLOPs of a forward pass over `tokens` tokens (any packing: RWKV's work does not depend on how
// the tokens are split into sequences): 2 x tokens x ProjectionParams + tokens x L x WKV.
// Elementwise work (norms, mixes, activations) is O(N x C) and left out, as GEMM-centred
// benchmarks such as llama.cpp's and MLPerf's do; it is < 1% of the total for Finch shapes.
double ForwardFlops(const ModelConfig& c, int64_t tokens);

}  // namespace rwkv_embed::bench
