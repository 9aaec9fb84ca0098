#include "model/rwkv7/rwkv7.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/delta_rule.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"

namespace rwkv_embed {

using kernels::MatMulPrecision;
using kernels::WeightMatrix;

// Scratch matrices of one forward pass, kept between calls so that later batches allocate
// nothing: 14 N x C buffers, one N x F and one N x max(D).
struct Rwkv7Workspace {
  Matrix x;                            // residual stream
  Matrix a, xx, xm, delta;             // LN output, shift delta, mixed input, branch output
  Matrix r, w, k, v, alpha, g, kk, y;  // time-mix quantities, [N, C]
  Matrix v_first;                      // block 0's v, per token
  Matrix lora, ffn_k;                  // [N, D], [N, F]
};

namespace {

void Linear(const Matrix& x, const WeightMatrix& w, Matrix& y, MatMulPrecision precision) {
  y.Resize(x.rows(), w.rows);
  kernels::MatMulT(x.data(), x.rows(), w, y.data(), precision);
}

class Block final : public BlockStack {
 public:
  Block(const Rwkv7Config& config, std::span<const Rwkv7BlockWeights> blocks,
        const TokenBatch& batch, MatMulPrecision precision, Rwkv7Workspace& ws)
      : c_(config), blocks_(blocks), batch_(batch), precision_(precision), ws_(ws) {}

  void RunBlock(int64_t i, const BlockOverride& ov, Matrix& x,
                std::vector<BlockState*>& states) override {
    TimeMix(blocks_[i], i == 0, ov, x, states);
    ChannelMix(blocks_[i], ov, x, states);
  }

  // a = LN(x), xx = shift(a) - a from each sequence's carried shift state, which becomes a at its
  // last token.
  void ShiftedNorm(const Matrix& x, const LayerNormWeights& ln,
                   std::vector<std::vector<float>*>& shift_states) {
    const int64_t N = x.rows(), C = x.cols(), n_seq = batch_.num_sequences();
    ws_.a.Resize(N, C);
    kernels::LayerNormRows(x.data(), N, C, ln.weight.data(), ln.bias.data(), c_.layer_norm_epsilon,
                           ws_.a.data());
    std::vector<const float*> prev(n_seq);
    for (int64_t s = 0; s < n_seq; ++s) prev[s] = shift_states[s]->data();
    ws_.xx.Resize(N, C);
    kernels::TokenShiftDelta(ws_.a.data(), C, batch_.offsets, prev.data(), ws_.xx.data());
    for (int64_t s = 0; s < n_seq; ++s) {
      std::memcpy(shift_states[s]->data(), ws_.a.Row(batch_.offsets[s + 1] - 1), C * sizeof(float));
    }
  }

  // x_c = a + xx * mu, into ws_.xm.
  const Matrix& Mixed(const std::vector<float>& mu) {
    ws_.xm.Resize(ws_.a.rows(), ws_.a.cols());
    kernels::MixRows(ws_.a.data(), ws_.xx.data(), mu.data(), ws_.a.rows(), ws_.a.cols(),
                     ws_.xm.data());
    return ws_.xm;
  }

  // Time mix (docs/design.md#rwkv-7-block). `first`: block 0, which sets v_first.
  void TimeMix(const Rwkv7BlockWeights& b, bool first, const BlockOverride& ov, Matrix& x,
               std::vector<BlockState*>& states) {
    const int64_t N = x.rows(), C = c_.hidden_size, H = c_.num_heads, S = c_.head_size;
    const int64_t n_seq = batch_.num_sequences();
    std::vector<std::vector<float>*> shift(n_seq);
    for (int64_t s = 0; s < n_seq; ++s) shift[s] = &states[s]->time_shift;
    ShiftedNorm(x, b.ln1, shift);

    // v = x_v @ Wv^T; block 0: v_first = v; later: v = lerp(v, v_first, sigmoid(v0 + x_v@v1@v2))
    Linear(Mixed(b.x_v), b.value, ws_.v, precision_);
    if (first) {
      ws_.v_first = ws_.v;
    } else if (!ov.skip_time_mix) {
      Linear(ws_.xm, b.v1, ws_.lora, precision_);
      Linear(ws_.lora, b.v2, ws_.delta, precision_);
      kernels::SigmoidRows(ws_.delta.data(), N, C, b.v0.data());
      kernels::LerpInPlace(ws_.v.data(), ws_.v_first.data(), ws_.delta.data(), N * C);
    }
    if (ov.skip_time_mix) return;

    Linear(Mixed(b.x_r), b.receptance, ws_.r, precision_);
    Linear(Mixed(b.x_k), b.key, ws_.k, precision_);
    // w = exp(-e^-0.5 * sigmoid(w0 + tanh(x_w @ w1) @ w2)), in (0.545, 1); frozen: sigmoid(w0)
    if (ov.freeze_decay) {
      ws_.w.Resize(N, C);
      std::fill_n(ws_.w.data(), ws_.w.size(), 0.0f);
    } else {
      Linear(Mixed(b.x_w), b.w1, ws_.lora, precision_);
      kernels::TanhRows(ws_.lora.data(), N, ws_.lora.cols());
      Linear(ws_.lora, b.w2, ws_.w, precision_);
    }
    kernels::ExpNegScaledSigmoidRows(ws_.w.data(), N, C, b.w0.data(),
                                     ov.decay_rate_scale * static_cast<float>(std::exp(-0.5)));
    // alpha = sigmoid(a0 + x_a @ a1 @ a2): the in-context learning rate
    Linear(Mixed(b.x_a), b.a1, ws_.lora, precision_);
    Linear(ws_.lora, b.a2, ws_.alpha, precision_);
    kernels::SigmoidRows(ws_.alpha.data(), N, C, b.a0.data());
    // g = sigmoid(x_g @ g1) @ g2
    Linear(Mixed(b.x_g), b.g1, ws_.lora, precision_);
    kernels::SigmoidRows(ws_.lora.data(), N, ws_.lora.cols(), nullptr);
    Linear(ws_.lora, b.g2, ws_.g, precision_);

    // kk = normalize(k * k_k) per head; k = k * (1 + (alpha - 1) * k_a)
    ws_.kk.Resize(N, C);
    kernels::MulRowsByVector(ws_.k.data(), b.k_k.data(), N, C, ws_.kk.data());
    kernels::L2NormalizeGroups(ws_.kk.data(), N, H, S, 1e-12);
    kernels::MulByBlendWithOne(ws_.k.data(), ws_.alpha.data(), b.k_a.data(), N, C);

    // S = S diag(w) + (S a) b^T + v k^T, y = S r, with a = -kk, b = kk * alpha (in place).
    kernels::MulInPlace(ws_.alpha.data(), ws_.kk.data(), N * C);
    kernels::ScaleInPlace(ws_.kk.data(), -1.0f, N * C);
    std::vector<float*> wkv(n_seq);
    for (int64_t s = 0; s < n_seq; ++s) wkv[s] = states[s]->wkv.data();
    ws_.y.Resize(N, C);
    kernels::DeltaRule(ws_.r.data(), ws_.w.data(), ws_.k.data(), ws_.v.data(), ws_.kk.data(),
                       ws_.alpha.data(), batch_.offsets, H, S, wkv.data(), ws_.y.data());

    // y = GroupNorm(y) + (sum_j r k r_k) v per head;  x += (y * g) @ Wo^T
    kernels::GroupNormRows(ws_.y.data(), N, H, S, b.ln_x.weight.data(), b.ln_x.bias.data(),
                           c_.group_norm_epsilon, ws_.y.data());
    if (!ov.zero_bonus) {
      kernels::AddGroupTripleDotTimes(ws_.y.data(), ws_.r.data(), ws_.k.data(), b.r_k.data(),
                                      ws_.v.data(), N, H, S);
    }
    kernels::MulInPlace(ws_.y.data(), ws_.g.data(), N * C);
    Linear(ws_.y, b.output, ws_.delta, precision_);
    kernels::AddInPlace(x.data(), ws_.delta.data(), N * C);
  }

  // Channel mix: x += relu((b + xx * x_k) @ Wk^T)^2 @ Wv^T, b = LN2(x).
  void ChannelMix(const Rwkv7BlockWeights& b, const BlockOverride& ov, Matrix& x,
                  std::vector<BlockState*>& states) {
    const int64_t n_seq = batch_.num_sequences();
    std::vector<std::vector<float>*> shift(n_seq);
    for (int64_t s = 0; s < n_seq; ++s) shift[s] = &states[s]->channel_shift;
    ShiftedNorm(x, b.ln2, shift);
    if (ov.skip_channel_mix) return;
    Linear(Mixed(b.ffn_x_k), b.ffn_key, ws_.ffn_k, precision_);
    kernels::ReluSquareInPlace(ws_.ffn_k.data(), ws_.ffn_k.size());
    Linear(ws_.ffn_k, b.ffn_value, ws_.delta, precision_);
    kernels::AddInPlace(x.data(), ws_.delta.data(), x.size());
  }

 private:
  const Rwkv7Config& c_;
  std::span<const Rwkv7BlockWeights> blocks_;
  const TokenBatch& batch_;
  MatMulPrecision precision_;
  Rwkv7Workspace& ws_;
};

}  // namespace

Rwkv7Model::Rwkv7Model(std::unique_ptr<Rwkv7Weights> weights)
    : RecurrentModel(std::move(weights)) {}
Rwkv7Model::~Rwkv7Model() = default;

BlockStateShape Rwkv7Model::state_shape() const {
  return {config().hidden_size, config().num_heads, config().head_size};
}

std::vector<NamedWeight> Rwkv7Model::BlockProjections(int64_t block) const {
  if (block < 0 || block >= num_blocks()) {
    throw UsageError("block " + std::to_string(block) + " out of range 0.." +
                     std::to_string(num_blocks() - 1));
  }
  // fla names whatever the checkpoint's naming (the gate is a LoRA pair here, not listed).
  const Rwkv7BlockWeights& b = weights_->blocks()[block];
  return {{"attn.r_proj.weight", b.receptance}, {"attn.k_proj.weight", b.key},
          {"attn.v_proj.weight", b.value},      {"attn.o_proj.weight", b.output},
          {"ffn.key.weight", b.ffn_key},        {"ffn.value.weight", b.ffn_value}};
}

ForwardResult Rwkv7Model::Forward(const TokenBatch& batch, const ForwardOptions& options,
                                  const HiddenStateTap& tap,
                                  std::span<const SequenceState> initial_states) const {
  std::unique_ptr<Rwkv7Workspace> ws = pool_.Take();
  Block blocks(config(), weights_->blocks(), batch, options.precision, *ws);
  const StackWeights stack{weights_->embeddings(),      weights_->ln0(),
                           weights_->ln_out(),          weights_->head(),
                           config().layer_norm_epsilon, state_shape()};
  ForwardResult result =
      RunBlockStack(*this, stack, blocks, ws->x, batch, options, tap, initial_states);
  pool_.Return(std::move(ws));
  return result;
}

}  // namespace rwkv_embed
