// What every recurrent architecture shares (RWKV-6 in model/rwkv6, RWKV-7 in model/rwkv7), so
// that a new architecture is its block equations plus its weight schema:
// - RunBlockStack, the forward driver: embeds the tokens, applies ln0, runs the blocks one at a
//   time carrying each sequence's state, delivers the taps and the states asked for, and applies
//   ln_out and the LM head;
// - RecurrentModel, the part of the SequenceModel interface that only reads the weights, and the
//   pool of forward-pass scratch buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bench/flops.h"
#include "core/matrix.h"
#include "kernels/gemm.h"
#include "model/sequence_model.h"
#include "model/tensor_reader.h"

namespace rwkv_embed {

// Sizes of one block's recurrent state (BlockState).
struct BlockStateShape {
  int64_t hidden = 0;     // C: each token-shift vector
  int64_t heads = 0;      // H
  int64_t head_size = 0;  // S: each head's matrix is S x S

  // b's three pieces at these sizes, zeroed (the state before a sequence's first token).
  void Reset(BlockState& b) const;
};

// An architecture's blocks, as RunBlockStack calls them.
class BlockStack {
 public:
  // Block `i` on the residual stream x [N_tokens, C], in place. states[s] is sequence s's state of
  // this block: read as the carried state, left as the state after the sequence's last token.
  virtual void RunBlock(int64_t i, const BlockOverride& ov, Matrix& x,
                        std::vector<BlockState*>& states) = 0;

 protected:
  ~BlockStack() = default;
};

// The weights around the blocks, the same in every architecture.
struct StackWeights {
  const kernels::WeightMatrix& embeddings;  // [V, C]
  const LayerNormWeights& ln0;              // the input LayerNorm
  const LayerNormWeights& ln_out;
  const kernels::WeightMatrix& head;  // [V, C]; data is null when the checkpoint has none
  double layer_norm_epsilon;
  BlockStateShape state;
};

// One SequenceModel::Forward (the guarantees are in model/sequence_model.h), with `x` as the
// residual stream's buffer. Checks the arguments first (UsageError).
ForwardResult RunBlockStack(const SequenceModel& model, const StackWeights& weights,
                            BlockStack& blocks, Matrix& x, const TokenBatch& batch,
                            const ForwardOptions& options, const HiddenStateTap& tap,
                            std::span<const SequenceState> initial_states);

// Scratch buffers of finished forward passes, kept so that later batches allocate nothing and take
// no page faults. Thread-safe: concurrent passes each take their own.
template <typename Workspace>
class WorkspacePool {
 public:
  std::unique_ptr<Workspace> Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pool_.empty()) return std::make_unique<Workspace>();
    auto ws = std::move(pool_.back());
    pool_.pop_back();
    return ws;
  }
  void Return(std::unique_ptr<Workspace> ws) {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_.push_back(std::move(ws));
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_.clear();
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Workspace>> pool_;
};

// The SequenceModel members that read only the weights (Weights: Rwkv6Weights, Rwkv7Weights...),
// and the workspace pool. Workspace may be incomplete here: the derived class defines its
// constructor and destructor where it is complete.
template <typename Weights, typename Workspace>
class RecurrentModel : public SequenceModel {
 public:
  using Config = std::remove_cvref_t<decltype(std::declval<const Weights&>().config())>;

  RecurrentModel(const RecurrentModel&) = delete;
  RecurrentModel& operator=(const RecurrentModel&) = delete;

  const Config& config() const { return weights_->config(); }
  const Weights& weights() const { return *weights_; }

  std::string Describe() const override { return weights_->Describe(); }
  int64_t hidden_size() const override { return config().hidden_size; }
  int64_t num_blocks() const override { return config().num_layers; }
  int64_t intermediate_size() const override { return config().intermediate_size; }
  int64_t vocab_size() const override { return config().vocab_size; }
  size_t checkpoint_bytes() const override { return weights_->checkpoint_bytes(); }
  DType weight_dtype() const override { return weights_->embeddings().dtype; }
  bool random_weights() const override { return config().random_weights; }
  std::optional<std::string> FindNonFiniteWeight() const override {
    return weights_->FindNonFiniteWeight();
  }

  int64_t ProjectionParams() const override { return bench::ProjectionParams(config()); }
  double FlopsPerToken() const override { return bench::ForwardFlops(config(), 1); }

  SequenceState ZeroState() const override {
    SequenceState state(config().num_layers);
    for (auto& b : state) state_shape().Reset(b);
    return state;
  }
  void FreeWorkspaces() override { pool_.Clear(); }

 protected:
  explicit RecurrentModel(std::unique_ptr<Weights> weights) : weights_(std::move(weights)) {}
  ~RecurrentModel() override = default;

  virtual BlockStateShape state_shape() const = 0;

  std::unique_ptr<Weights> weights_;
  mutable WorkspacePool<Workspace> pool_;
};

}  // namespace rwkv_embed
