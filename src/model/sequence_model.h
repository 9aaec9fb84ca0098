// The one interface every recurrent architecture implements (RWKV-6 in model/rwkv6, RWKV-7 in
// model/rwkv7, both on the shared forward driver of model/recurrent_model.h), so the embedder,
// benchmarks and front ends never name an architecture.
//
// Packed: the tokens of all sequences form one [N_tokens, C] activation matrix, so every
// projection is one large GEMM; token shift and the recurrence restart at each sequence
// boundary (RWKV has no attention mask, so padding would pollute states and mean pooling).
//
// Taps: the caller names the layers it wants (0 = after the input LayerNorm, k = output of block
// k, L+1 = after ln_out) and receives each as soon as it is computed, from one pass. The final
// recurrent state of every block for every sequence can be returned (the "state taps"), and an
// initial state can be given, which is how chunked and token-by-token evaluation work.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/matrix.h"
#include "kernels/gemm.h"
#include "model/layer_spec.h"

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

// Recurrent state of one block for one sequence, after its last token. Both architectures carry
// the same three pieces: the time-mix token-shift input (LN1 output of the last token), one
// matrix per head, and the channel-mix token-shift input (LN2 output of the last token). Zeros at
// the start of a sequence. The matrix layout is the architecture's own: RWKV-6 [H, S, S] indexed
// key x value (docs/design.md#rwkv-6-block), RWKV-7 [H, N, N] indexed value x key
// (docs/design.md#rwkv-7-block).
struct BlockState {
  std::vector<float> time_shift;     // [C]
  std::vector<float> wkv;            // [H, N, N]
  std::vector<float> channel_shift;  // [C]
};
using SequenceState = std::vector<BlockState>;  // one per block

// Interventions on a block, for ablation studies (model/ablation.h parses them from text).
// Defaults leave the block unchanged. Each switch equals a weight edit (tests/ablation_test.cc):
// the edit named after it gives the same hidden states.
struct BlockOverride {
  // x += 0 instead of the attention branch (= zero attention.output.weight / attn o_proj).
  bool skip_time_mix = false;
  // x += 0 instead of the feed-forward branch (= zero feed_forward.value.weight / ffn value).
  bool skip_channel_mix = false;
  // Multiplies the decay rate (RWKV-6: d = exp(-s * exp(w)); RWKV-7: w = exp(-s * e^-0.5 *
  // sigmoid(z))). > 1 forgets faster.
  float decay_rate_scale = 1.0f;
  // The decay's data-dependent LoRA term removed (= zero its second matrix). RWKV-6
  // (docs/design.md#rwkv-6-block): w = time_decay instead of time_decay + tanh(x_w @ D1) @ D2, so d
  // = exp(-exp(time_decay)) is the same at every token. RWKV-7 (docs/design.md#rwkv-7-block): z =
  // w0 instead of w0 + tanh(x_w @ w1) @ w2.
  bool freeze_decay = false;
  // The current token's bonus removed. RWKV-6 (docs/design.md#rwkv-6-block): u = time_faaaa = 0 in
  // y_t[j] = Σ_i r_t[i] (u[i] k_t[i] v_t[j] + Σ[i,j]). RWKV-7 has no u; its analogue, the term
  // through which the current token's own key and value reach y, is (Σ_j r[h,j] k[h,j] r_k[h,j])
  // * v[h,:] (docs/design.md#rwkv-7-block): it is dropped, as if r_k = 0.
  bool zero_bonus = false;
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

// A block's projection matrix, for weight analyses: its Hugging Face name inside the block
// (RWKV-6 "attention.key.weight"; RWKV-7 the fla name "attn.k_proj.weight") and the stored
// weights, [out, in].
struct NamedWeight {
  std::string name;
  kernels::WeightMatrix weight;
};

struct LoadOptions {
  bool check_finite = false;  // scan every tensor for NaN/Inf (reads all weight pages)
};

class SequenceModel {
 public:
  virtual ~SequenceModel() = default;

  // "rwkv6", "rwkv7": what LoadModel recognised.
  virtual std::string_view Architecture() const = 0;
  // Shapes, naming, dtype and source, one line.
  virtual std::string Describe() const = 0;
  virtual int64_t hidden_size() const = 0;
  virtual int64_t num_blocks() const = 0;
  // F: the channel-mix width (its key weight [F, C] is the largest matrix a token meets).
  virtual int64_t intermediate_size() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Layer numbering and how Hugging Face's output_hidden_states indexes it.
  virtual LayerNumbering layer_numbering() const = 0;
  int num_layer_taps() const { return static_cast<int>(num_blocks()) + 2; }
  // Weights a token is multiplied by (projections and LoRA factors; no LM head), and the FLOPs of
  // one token through the whole network (see bench/flops.h).
  virtual int64_t ProjectionParams() const = 0;
  virtual double FlopsPerToken() const = 0;
  virtual size_t checkpoint_bytes() const = 0;
  // Scratch a forward pass needs per batch token (activations of one block), for checking a batch
  // size against memory before it is allocated.
  virtual int64_t ScratchBytesPerToken() const = 0;
  // The dtype the checkpoint stores its weights in (that of the token embeddings).
  virtual DType weight_dtype() const = 0;
  virtual bool random_weights() const = 0;
  // The first NaN/Inf among the weights, in forward order, as "tensor 'NAME' in FILE has a
  // non-finite value at element N"; nullopt when all are finite. Reads every weight: for
  // explaining a non-finite result (LoadOptions::check_finite is the up-front form).
  virtual std::optional<std::string> FindNonFiniteWeight() const = 0;

  // `initial_states`: empty (all sequences start from zeros) or one per sequence, where an empty
  // SequenceState also means zeros.
  // Throws UsageError for out-of-range token ids or layers and inconsistent options.
  virtual ForwardResult Forward(const TokenBatch& batch, const ForwardOptions& options,
                                const HiddenStateTap& tap = {},
                                std::span<const SequenceState> initial_states = {}) const = 0;

  virtual SequenceState ZeroState() const = 0;

  // The full projection matrices of block `block` (0-based; no LoRA factors, which are low rank
  // by construction), in forward order. UsageError for a block out of range.
  virtual std::vector<NamedWeight> BlockProjections(int64_t block) const = 0;

  // Forward keeps its scratch buffers for the next call; this returns them to the system.
  virtual void FreeWorkspaces() = 0;
};

// The argument checks every Forward makes first (UsageError naming what is wrong): layers in
// range and with a tap, overrides and initial states sized to the model and batch, no empty
// sequence, token ids below the vocabulary size.
void CheckForwardArguments(const SequenceModel& model, const TokenBatch& batch,
                           const ForwardOptions& options, const HiddenStateTap& tap,
                           std::span<const SequenceState> initial_states);

// The rows of a stored weight matrix as dense floats (BF16 and F16 widened).
Matrix DenseWeightRows(const kernels::WeightMatrix& w);

// Which sequences' states ForwardResult::states receives (1 = kept): every one, or those named in
// options.state_sequences (UsageError for one outside the batch).
std::vector<uint8_t> StatesToKeep(const ForwardOptions& options, int64_t num_sequences);

}  // namespace rwkv_embed
