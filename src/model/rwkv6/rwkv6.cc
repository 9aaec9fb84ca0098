#include "model/rwkv6/rwkv6.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "kernels/activations.h"
#include "kernels/linear_attention.h"
#include "kernels/norm.h"

namespace rwkv_embed {

namespace {

using kernels::MatMulPrecision;
using kernels::WeightMatrix;

// Large enough that thread start-up is amortised.
constexpr int64_t kParallelElems = 1 << 15;
// Stack scratch for row-wise transcendental functions.
constexpr int64_t kRowChunk = 256;

void Linear(const Matrix& x, const WeightMatrix& w, Matrix& y, MatMulPrecision precision) {
  y.Resize(x.rows(), w.rows);
  kernels::MatMulT(x.data(), x.rows(), w, y.data(), precision);
}

}  // namespace

// Scratch matrices of one forward pass, kept between calls (Rwkv6Model's pool) so that batches
// after the first allocate nothing and take no page faults. The N x C buffers are the working
// set that bounds memory above the weights: 11 of them plus one N x F, i.e. about 50 bytes x C
// per batch token.
struct ForwardWorkspace {
  Matrix x;                                   // residual stream
  Matrix a, xx, xj, delta, r, k, v, g, w, y;  // N x C (or N x A)
  Matrix mix, mix_j, decay_lora, ffn_k;       // N x 5E, N x E, N x D, N x F
};

namespace {

// xx[t] = shift(a)[t] - a[t], where shift(a)[t] = a[t-1] inside a sequence and the carried
// state (zeros for a fresh sequence) at its first token.
void TokenShiftDelta(const Matrix& a, const TokenBatch& batch,
                     const std::vector<const float*>& first_prev, Matrix& xx) {
  const int64_t C = a.cols();
  xx.Resize(a.rows(), C);
  const int64_t n_seq = batch.num_sequences();
#pragma omp parallel for schedule(static) if (a.size() > kParallelElems)
  for (int64_t s = 0; s < n_seq; ++s) {
    for (int64_t t = batch.offsets[s]; t < batch.offsets[s + 1]; ++t) {
      const float* prev = t == batch.offsets[s] ? first_prev[s] : a.Row(t - 1);
      const float* cur = a.Row(t);
      float* out = xx.Row(t);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = prev[c] - cur[c];
    }
  }
}

// out = a + xx * (maa + delta)   (delta may be null: out = a + xx * maa)
void Mix(const Matrix& a, const Matrix& xx, const std::vector<float>& maa, const Matrix* delta,
         Matrix& out) {
  const int64_t N = a.rows(), C = a.cols();
  out.Resize(N, C);
#pragma omp parallel for schedule(static) if (a.size() > kParallelElems)
  for (int64_t t = 0; t < N; ++t) {
    const float* at = a.Row(t);
    const float* xt = xx.Row(t);
    const float* dt = delta ? delta->Row(t) : nullptr;
    float* o = out.Row(t);
    if (dt) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = at[c] + xt[c] * (maa[c] + dt[c]);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = at[c] + xt[c] * maa[c];
    }
  }
}

template <typename F>
void Apply(Matrix& m, F f) {
  float* p = m.data();
  const int64_t n = m.size();
#pragma omp parallel for schedule(static) if (n > kParallelElems)
  for (int64_t i = 0; i < n; ++i) p[i] = f(p[i]);
}

// Calls f(row, t) for every row of m, rows split across threads when the matrix is large.
template <typename F>
void ForRows(Matrix& m, F f) {
  const int64_t rows = m.rows();
#pragma omp parallel for schedule(static) if (m.size() > kParallelElems)
  for (int64_t t = 0; t < rows; ++t) f(m.Row(t), t);
}

void TanhRows(Matrix& m) {
  ForRows(m, [&m](float* row, int64_t) { kernels::TanhInPlace(row, m.cols()); });
}

// silu(v) = v * sigmoid(v) = v / (1 + exp(-v)), in place.
void SiluRows(Matrix& m) {
  const int64_t n = m.cols();
  ForRows(m, [n](float* row, int64_t) {
    float e[kRowChunk];
    for (int64_t c0 = 0; c0 < n; c0 += kRowChunk) {
      const int64_t len = std::min(kRowChunk, n - c0);
      for (int64_t c = 0; c < len; ++c) e[c] = -row[c0 + c];
      kernels::ExpInPlace(e, len);
      for (int64_t c = 0; c < len; ++c) row[c0 + c] /= 1.0f + e[c];
    }
  });
}

class BlockRunner final : public BlockStack {
 public:
  BlockRunner(const Rwkv6Config& config, std::span<const Rwkv6BlockWeights> blocks,
              const TokenBatch& batch, MatMulPrecision precision, ForwardWorkspace& ws)
      : c_(config), blocks_(blocks), batch_(batch), precision_(precision), ws_(ws) {}

  void RunBlock(int64_t i, const BlockOverride& ov, Matrix& x,
                std::vector<BlockState*>& states) override {
    TimeMix(blocks_[i], ov, x, states);
    ChannelMix(blocks_[i], ov, x, states);
  }

  // Time mix (eq. of docs/design.md#rwkv-6-block): x += W_o (GroupNorm(wkv(r, k, v, d, u)) *
  // silu(g)).
  void TimeMix(const Rwkv6BlockWeights& b, const BlockOverride& ov, Matrix& x,
               std::vector<BlockState*>& states) {
    const int64_t C = c_.hidden_size, H = c_.num_heads(), S = c_.head_size;
    const int64_t E = c_.time_mix_extra_dim, N = x.rows(), n_seq = batch_.num_sequences();
    Matrix& a = ws_.a;
    a.Resize(N, C);
    kernels::LayerNormRows(x.data(), N, C, b.ln1.weight.data(), b.ln1.bias.data(),
                           c_.layer_norm_epsilon, a.data());
    std::vector<const float*> prev(n_seq);
    for (int64_t s = 0; s < n_seq; ++s) prev[s] = states[s]->time_shift.data();
    TokenShiftDelta(a, batch_, prev, ws_.xx);
    for (int64_t s = 0; s < n_seq; ++s) {  // the new carried shift is a at the last token
      std::memcpy(states[s]->time_shift.data(), a.Row(batch_.offsets[s + 1] - 1),
                  C * sizeof(float));
    }
    if (ov.skip_time_mix) return;

    // Data-dependent token shift: m = tanh((a + xx*maa_x) @ W1) split into 5 LoRA inputs,
    // x_j = a + xx * (maa_j + m_j @ W2[j]) for j in (w, k, v, r, g); each x_j is projected as
    // soon as it is made, so one buffer holds them all in turn.
    Mix(a, ws_.xx, b.maa_x, nullptr, ws_.xj);
    Linear(ws_.xj, b.maa_w1, ws_.mix, precision_);
    TanhRows(ws_.mix);
    const std::vector<float>* maas[5] = {&b.maa_w, &b.maa_k, &b.maa_v, &b.maa_r, &b.maa_g};
    ws_.mix_j.Resize(N, E);
    for (int j : {1, 2, 3, 4, 0}) {
      if (j == 0 && ov.freeze_decay) {  // w = time_decay: the LoRA term (and x_w) is not needed
        ws_.w.Resize(N, c_.attention_hidden_size);
        std::fill_n(ws_.w.data(), ws_.w.size(), 0.0f);
        continue;
      }
      for (int64_t t = 0; t < N; ++t) {
        std::memcpy(ws_.mix_j.Row(t), ws_.mix.Row(t) + j * E, E * sizeof(float));
      }
      Linear(ws_.mix_j, b.maa_w2[j], ws_.delta, precision_);
      Mix(a, ws_.xx, *maas[j], &ws_.delta, ws_.xj);
      switch (j) {
        case 1:
          Linear(ws_.xj, b.key, ws_.k, precision_);
          break;
        case 2:
          Linear(ws_.xj, b.value, ws_.v, precision_);
          break;
        case 3:
          Linear(ws_.xj, b.receptance, ws_.r, precision_);
          break;
        case 4:
          Linear(ws_.xj, b.gate, ws_.g, precision_);
          SiluRows(ws_.g);
          break;
        default:
          // Data-dependent decay: w = time_decay + tanh(x_w @ D1) @ D2, d = exp(-exp(w)).
          Linear(ws_.xj, b.decay_w1, ws_.decay_lora, precision_);
          TanhRows(ws_.decay_lora);
          Linear(ws_.decay_lora, b.decay_w2, ws_.w, precision_);
          break;
      }
    }
    const int64_t A = c_.attention_hidden_size;
    const float scale = ov.decay_rate_scale;
    ForRows(ws_.w, [&](float* wt, int64_t) {
      for (int64_t c = 0; c < A; ++c) wt[c] += b.time_decay[c];
      kernels::ExpInPlace(wt, A);
      for (int64_t c = 0; c < A; ++c) wt[c] *= -scale;
      kernels::ExpInPlace(wt, A);
    });

    // WKV recurrence per (sequence, head); restarts from each sequence's carried state.
    const std::vector<float> no_bonus(ov.zero_bonus ? b.bonus.size() : 0, 0.0f);
    const float* bonus = ov.zero_bonus ? no_bonus.data() : b.bonus.data();
    ws_.y.Resize(N, A);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (N * A > kParallelElems)
    for (int64_t s = 0; s < n_seq; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t t0 = batch_.offsets[s], off = t0 * A;
        kernels::LinearAttentionHead(ws_.r.data() + off, ws_.k.data() + off, ws_.v.data() + off,
                                     ws_.w.data() + off, bonus, batch_.length(s), h, S, A,
                                     states[s]->wkv.data() + h * S * S, ws_.y.data() + off);
      }
    }

    kernels::GroupNormRows(ws_.y.data(), N, H, S, b.ln_x.weight.data(), b.ln_x.bias.data(),
                           c_.group_norm_epsilon(), ws_.y.data());
    float* y = ws_.y.data();
    const float* g = ws_.g.data();
#pragma omp parallel for schedule(static) if (N * A > kParallelElems)
    for (int64_t i = 0; i < N * A; ++i) y[i] *= g[i];
    Linear(ws_.y, b.output, ws_.delta, precision_);
    AddInto(x, ws_.delta);
  }

  // Channel mix: x += sigmoid(x_r @ Wr) * (relu(x_k @ Wk)^2 @ Wv).
  void ChannelMix(const Rwkv6BlockWeights& b, const BlockOverride& ov, Matrix& x,
                  std::vector<BlockState*>& states) {
    const int64_t C = c_.hidden_size, N = x.rows(), n_seq = batch_.num_sequences();
    Matrix& bn = ws_.a;
    bn.Resize(N, C);
    kernels::LayerNormRows(x.data(), N, C, b.ln2.weight.data(), b.ln2.bias.data(),
                           c_.layer_norm_epsilon, bn.data());
    std::vector<const float*> prev(n_seq);
    for (int64_t s = 0; s < n_seq; ++s) prev[s] = states[s]->channel_shift.data();
    TokenShiftDelta(bn, batch_, prev, ws_.xx);
    for (int64_t s = 0; s < n_seq; ++s) {
      std::memcpy(states[s]->channel_shift.data(), bn.Row(batch_.offsets[s + 1] - 1),
                  C * sizeof(float));
    }
    if (ov.skip_channel_mix) return;

    // Buffers free during the channel mix: xj, delta, r, k.
    Mix(bn, ws_.xx, b.ffn_maa_k, nullptr, ws_.xj);
    Mix(bn, ws_.xx, b.ffn_maa_r, nullptr, ws_.delta);
    Linear(ws_.xj, b.ffn_key, ws_.ffn_k, precision_);
    Apply(ws_.ffn_k, [](float v) {
      const float r = v > 0.0f ? v : 0.0f;
      return r * r;
    });
    Linear(ws_.ffn_k, b.ffn_value, ws_.r, precision_);
    Linear(ws_.delta, b.ffn_receptance, ws_.k, precision_);
    // x += sigmoid(rr) * kv, sigmoid(v) = 1 / (1 + exp(-v)); rr is negated in place.
    ForRows(ws_.k, [&](float* rr, int64_t t) {
      for (int64_t c = 0; c < C; ++c) rr[c] = -rr[c];
      kernels::ExpInPlace(rr, C);
      const float* kv = ws_.r.Row(t);
      float* xt = x.Row(t);
      for (int64_t c = 0; c < C; ++c) xt[c] += kv[c] / (1.0f + rr[c]);
    });
  }

 private:
  static void AddInto(Matrix& x, const Matrix& d) {
    float* xp = x.data();
    const float* dp = d.data();
    const int64_t n = x.size();
#pragma omp parallel for schedule(static) if (n > kParallelElems)
    for (int64_t i = 0; i < n; ++i) xp[i] += dp[i];
  }

  const Rwkv6Config& c_;
  std::span<const Rwkv6BlockWeights> blocks_;
  const TokenBatch& batch_;
  MatMulPrecision precision_;
  ForwardWorkspace& ws_;
};

}  // namespace

std::vector<NamedWeight> Rwkv6Model::BlockProjections(int64_t block) const {
  if (block < 0 || block >= num_blocks()) {
    throw UsageError("block " + std::to_string(block) + " out of range 0.." +
                     std::to_string(num_blocks() - 1));
  }
  const Rwkv6BlockWeights& b = weights_->blocks()[block];
  return {{"attention.receptance.weight", b.receptance},
          {"attention.key.weight", b.key},
          {"attention.value.weight", b.value},
          {"attention.gate.weight", b.gate},
          {"attention.output.weight", b.output},
          {"feed_forward.key.weight", b.ffn_key},
          {"feed_forward.receptance.weight", b.ffn_receptance},
          {"feed_forward.value.weight", b.ffn_value}};
}

BlockStateShape Rwkv6Model::state_shape() const {
  return {config().hidden_size, config().num_heads(), config().head_size};
}

ForwardResult Rwkv6Model::Forward(const TokenBatch& batch, const ForwardOptions& options,
                                  const HiddenStateTap& tap,
                                  std::span<const SequenceState> initial_states) const {
  std::unique_ptr<ForwardWorkspace> ws = pool_.Take();
  BlockRunner blocks(config(), weights_->blocks(), batch, options.precision, *ws);
  const StackWeights stack{weights_->embeddings(), weights_->pre_ln(),          weights_->ln_out(),
                           weights_->head(),       config().layer_norm_epsilon, state_shape()};
  ForwardResult result =
      RunBlockStack(*this, stack, blocks, ws->x, batch, options, tap, initial_states);
  pool_.Return(std::move(ws));
  return result;
}

Rwkv6Model::Rwkv6Model(std::unique_ptr<Rwkv6Weights> weights)
    : RecurrentModel(std::move(weights)) {}
Rwkv6Model::~Rwkv6Model() = default;

}  // namespace rwkv_embed
