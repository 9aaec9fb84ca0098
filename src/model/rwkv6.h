// The RWKV-6 ("Finch") forward pass over packed batches of sequences, with taps (DESIGN.md §7;
// the interface and its guarantees are in model/sequence_model.h).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "model/sequence_model.h"
#include "model/weights.h"

namespace rwkv_embed {

struct ForwardWorkspace;

class Rwkv6Model : public SequenceModel {
 public:
  explicit Rwkv6Model(std::unique_ptr<Rwkv6Weights> weights);
  ~Rwkv6Model() override;
  Rwkv6Model(const Rwkv6Model&) = delete;
  Rwkv6Model& operator=(const Rwkv6Model&) = delete;

  const Rwkv6Config& config() const { return weights_->config(); }
  const Rwkv6Weights& weights() const { return *weights_; }

  std::string_view Architecture() const override { return "rwkv6"; }
  std::string Describe() const override { return weights_->Describe(); }
  int64_t hidden_size() const override { return config().hidden_size; }
  int64_t num_blocks() const override { return config().num_layers; }
  int64_t vocab_size() const override { return config().vocab_size; }
  LayerNumbering layer_numbering() const override {
    return {static_cast<int>(config().num_layers), HfHiddenStates::kRwkv6};
  }
  int64_t ProjectionParams() const override;
  double FlopsPerToken() const override;
  size_t checkpoint_bytes() const override { return weights_->checkpoint_bytes(); }
  bool random_weights() const override { return config().random_weights; }
  // x, the LN output, five mixed inputs, r/k/v/g/w, LoRA and WKV output: about 11 [N, C] float
  // matrices, plus the channel-mix key [N, F].
  int64_t ScratchBytesPerToken() const override {
    return 44 * config().hidden_size + 4 * config().intermediate_size + 8;
  }
  int64_t intermediate_size() const override { return config().intermediate_size; }
  DType weight_dtype() const override { return weights_->embeddings().dtype; }
  std::optional<std::string> FindNonFiniteWeight() const override {
    return weights_->FindNonFiniteWeight();
  }

  ForwardResult Forward(const TokenBatch& batch, const ForwardOptions& options,
                        const HiddenStateTap& tap = {},
                        std::span<const SequenceState> initial_states = {}) const override;

  SequenceState ZeroState() const override;
  std::vector<NamedWeight> BlockProjections(int64_t block) const override;

  // Forward keeps its scratch buffers (about 50 x C bytes per batch token) for the next call;
  // this returns them to the system.
  void FreeWorkspaces() override;

 private:
  void ResetBlockState(BlockState& b) const;
  std::unique_ptr<ForwardWorkspace> AcquireWorkspace() const;
  void ReleaseWorkspace(std::unique_ptr<ForwardWorkspace> ws) const;

  std::unique_ptr<Rwkv6Weights> weights_;
  // Thread-safe pool: concurrent Forward calls each take their own workspace.
  mutable std::mutex pool_mutex_;
  mutable std::vector<std::unique_ptr<ForwardWorkspace>> pool_;
};

}  // namespace rwkv_embed
