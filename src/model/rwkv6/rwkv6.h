// The RWKV-6 ("Finch") forward pass over packed batches of sequences, with taps
// (docs/design.md#rwkv-6-block; the interface and its guarantees are in model/sequence_model.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "model/recurrent_model.h"
#include "model/rwkv6/rwkv6_weights.h"

namespace rwkv_embed {

struct ForwardWorkspace;

class Rwkv6Model : public RecurrentModel<Rwkv6Weights, ForwardWorkspace> {
 public:
  explicit Rwkv6Model(std::unique_ptr<Rwkv6Weights> weights);
  ~Rwkv6Model() override;

  std::string_view Architecture() const override { return "rwkv6"; }
  LayerNumbering layer_numbering() const override {
    return {static_cast<int>(config().num_layers), HfHiddenStates::kRwkv6};
  }
  // x, the LN output, five mixed inputs, r/k/v/g/w, LoRA and WKV output: about 11 [N, C] float
  // matrices, plus the channel-mix key [N, F]. Forward keeps them for the next call
  // (FreeWorkspaces returns them to the system).
  int64_t ScratchBytesPerToken() const override {
    return 44 * config().hidden_size + 4 * config().intermediate_size + 8;
  }

  ForwardResult Forward(const TokenBatch& batch, const ForwardOptions& options,
                        const HiddenStateTap& tap = {},
                        std::span<const SequenceState> initial_states = {}) const override;
  std::vector<NamedWeight> BlockProjections(int64_t block) const override;

 private:
  BlockStateShape state_shape() const override;
};

}  // namespace rwkv_embed
