// The RWKV-7 ("Goose", x070) forward pass over packed batches of sequences, with taps
// (docs/design.md#rwkv-7-block; the interface and its guarantees are in model/sequence_model.h).
//
// State taps: BlockState::time_shift = ln1 output of the last token (att_x), wkv = the per-head
// [N, N] matrices indexed value x key, channel_shift = ln2 output of the last token (ffn_x).
// v_first (block 0's value, mixed into every later block's value per token) is not state: it is
// recomputed per token, so chunked evaluation with carried states equals one pass.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/recurrent_model.h"
#include "model/rwkv7/rwkv7_weights.h"

namespace rwkv_embed {

struct Rwkv7Workspace;

class Rwkv7Model : public RecurrentModel<Rwkv7Weights, Rwkv7Workspace> {
 public:
  explicit Rwkv7Model(std::unique_ptr<Rwkv7Weights> weights);
  ~Rwkv7Model() override;

  std::string_view Architecture() const override { return "rwkv7"; }
  LayerNumbering layer_numbering() const override {
    return {static_cast<int>(config().num_layers), HfHiddenStates::kRwkv7};
  }
  // Rwkv7Workspace: 14 [N, C] float matrices, the LoRA hidden [N, D <= C] and the channel-mix
  // key [N, F].
  int64_t ScratchBytesPerToken() const override {
    return 60 * config().hidden_size + 4 * config().intermediate_size + 8;
  }

  // Block overrides: skip_time_mix adds nothing from a block's attention branch, but block 0
  // still computes its value as v_first, so skipping it does not change what later blocks
  // compute from v_first. decay_rate_scale s gives w = exp(-s * e^-0.5 * sigmoid(z));
  // freeze_decay gives z = w0; zero_bonus drops the r_k term.
  ForwardResult Forward(const TokenBatch& batch, const ForwardOptions& options,
                        const HiddenStateTap& tap = {},
                        std::span<const SequenceState> initial_states = {}) const override;
  std::vector<NamedWeight> BlockProjections(int64_t block) const override;

 private:
  BlockStateShape state_shape() const override;
};

}  // namespace rwkv_embed
