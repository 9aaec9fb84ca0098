// Floating-point work of the embedding forward pass, counted from the model shape, so that a
// measured time becomes an achieved GFLOP/s comparable with the machine's GEMM peak.
#pragma once

#include <cstdint>

#include "model/rwkv6/rwkv6_config.h"
#include "model/rwkv7/rwkv7_weights.h"

namespace rwkv_embed::bench {

// Weights every token is multiplied by in one block: the time-mix projections r, k, v, g
// ([A, C] each) and output ([C, A]); the token-shift LoRA (W1: C x 5E, W2: 5 x E x C) and the decay
// LoRA (D1: C x D, D2: D x A); the channel-mix key ([F, C]), value ([C, F]) and receptance ([C,
// C]). Requires the LoRA ranks (set by Rwkv6Weights::Load and the presets); UsageError when they
// are 0.
int64_t ProjectionParamsPerBlock(const Rwkv6Config& c);

// ProjectionParamsPerBlock * L. The LM head and the embedding lookup are excluded: the embedding
// forward never computes logits, and a lookup is a copy, not arithmetic.
int64_t ProjectionParams(const Rwkv6Config& c);

// The WKV recurrence of one block for one token (docs/design.md#rwkv-6-block,
// kernels::LinearAttentionHead): per head and per state element (i, j) of the S x S state, two
// multiply-adds for the output y_j += (r_i u_i k_i) v_j + r_i S_ij and two for the update S_ij =
// k_i v_j + d_i S_ij, i.e. 8 FLOPs x H x S x S = 8 x A x S.
int64_t WkvFlopsPerTokenPerBlock(const Rwkv6Config& c);

// FLOPs of a forward pass over `tokens` tokens (any packing: RWKV's work does not depend on how
// the tokens are split into sequences): 2 x tokens x ProjectionParams + tokens x L x WKV.
// Elementwise work (norms, mixes, activations) is O(N x C) and left out, as GEMM-centred
// benchmarks such as llama.cpp's and MLPerf's do; it is < 1% of the total for Finch shapes.
double ForwardFlops(const Rwkv6Config& c, int64_t tokens);

// ---- RWKV-7 (x070, docs/design.md#rwkv-7-block) ------------------------------------------------
// Per block: r, k, v, output ([C, C] each); the LoRA factors w1/w2 (C x Dw each), a1/a2 (Da),
// g1/g2 (Dg) and, in blocks >= 1, v1/v2 (Dv); the channel-mix key ([F, C]) and value ([C, F]).
// Block 0 has no value LoRA, so the total is not L x a per-block count.
int64_t ProjectionParams(const Rwkv7Config& c);

// The generalised delta rule of one block for one token (kernels::DeltaRuleHead): per head and
// state element, S a (2 FLOPs), the update S w + s b + v k (5) and y = S r (2): 9 x C x N.
int64_t WkvFlopsPerTokenPerBlock(const Rwkv7Config& c);

// 2 x tokens x ProjectionParams + tokens x L x WKV (element-wise work left out, as for RWKV-6).
double ForwardFlops(const Rwkv7Config& c, int64_t tokens);

}  // namespace rwkv_embed::bench
