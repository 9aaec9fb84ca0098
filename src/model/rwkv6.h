// The RWKV-6 ("Finch") forward pass over packed batches of sequences, with taps.
//
// Packed: the tokens of all sequences form one [N_tokens, C] activation matrix, so every
// projection is one large GEMM; token shift and the WKV recurrence restart at each sequence
// boundary (RWKV has no attention mask, so padding would pollute states and mean pooling).
//
// Taps: the caller names the layers it wants (0 = after pre_ln, k = output of block k,
// L+1 = after ln_out) and receives each as soon as it is computed, from one pass. The final
// recurrent state of every block for every sequence can be returned (the "state taps"), and an
// initial state can be given, which is how chunked and token-by-token evaluation work.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "core/matrix.h"
#include "kernels/gemm.h"
#include "model/weights.h"

namespace rwkv_embed {

// Sequences packed end to end: sequence i is tokens[offsets[i] .. offsets[i+1]).
struct TokenBatch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> offsets = {0};

  void Add(std::span<const int32_t> sequence);
  int64_t num_sequences() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t length(int64_t i) const { return offsets[i + 1] - offsets[i]; }
};

// Recurrent state of one block for one sequence, after its last token (eq. of DESIGN.md §7):
// the time-mix shift a_T = LN1(x_T), the WKV matrices (one S x S per head, key x value), and the
// channel-mix shift b_T = LN2(x_T). Zeros at the start of a sequence.
struct BlockState {
  std::vector<float> time_shift;     // [C]
  std::vector<float> wkv;            // [H, S, S]
  std::vector<float> channel_shift;  // [C]
};
using SequenceState = std::vector<BlockState>;  // one per block

// Interventions on a block, for ablation studies. Defaults leave the block unchanged.
struct BlockOverride {
  bool skip_time_mix = false;     // x += 0 instead of the attention branch
  bool skip_channel_mix = false;  // x += 0 instead of the feed-forward branch
  // Multiplies the decay rate: d = exp(-decay_rate_scale * exp(w)). > 1 forgets faster.
  float decay_rate_scale = 1.0f;
};

struct ForwardOptions {
  std::vector<int> layers;               // hidden-state taps to deliver (0 .. L+1), any order
  bool logits = false;                   // LM-head logits at each sequence's last token
  bool return_states = false;            // fill ForwardResult::states
  std::vector<BlockOverride> overrides;  // empty, or one per block
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kF32;
  // With return_states: only these sequences' states are filled (the others' stay empty), so a
  // caller carrying one long text across batches copies no other state. Empty = every sequence.
  std::vector<int64_t> state_sequences;
};

// Called once per requested layer with the [N_tokens, C] hidden states of the whole batch.
// The matrix is only valid during the call.
using HiddenStateTap = std::function<void(int layer, const Matrix& hidden)>;

struct ForwardResult {
  Matrix logits;                      // [num_sequences, V] when asked
  std::vector<SequenceState> states;  // [num_sequences] when asked
};

struct ForwardWorkspace;

class Rwkv6Model {
 public:
  explicit Rwkv6Model(std::unique_ptr<ModelWeights> weights);
  ~Rwkv6Model();
  Rwkv6Model(const Rwkv6Model&) = delete;
  Rwkv6Model& operator=(const Rwkv6Model&) = delete;

  const ModelConfig& config() const { return weights_->config(); }
  const ModelWeights& weights() const { return *weights_; }
  int num_layer_taps() const { return config().num_hidden_layers_with_ends(); }

  // `initial_states`: empty (all sequences start from zeros) or one per sequence, where an empty
  // SequenceState also means zeros.
  // Throws UsageError for out-of-range token ids or layers and inconsistent options.
  ForwardResult Forward(const TokenBatch& batch, const ForwardOptions& options,
                        const HiddenStateTap& tap = {},
                        std::span<const SequenceState> initial_states = {}) const;

  SequenceState ZeroState() const;

  // Forward keeps its scratch buffers (about 50 x C bytes per batch token) for the next call;
  // this returns them to the system.
  void FreeWorkspaces();

 private:
  void ResetBlockState(BlockState& b) const;
  std::unique_ptr<ForwardWorkspace> AcquireWorkspace() const;
  void ReleaseWorkspace(std::unique_ptr<ForwardWorkspace> ws) const;

  std::unique_ptr<ModelWeights> weights_;
  // Thread-safe pool: concurrent Forward calls each take their own workspace.
  mutable std::mutex pool_mutex_;
  mutable std::vector<std::unique_ptr<ForwardWorkspace>> pool_;
};

}  // namespace rwkv_embed
