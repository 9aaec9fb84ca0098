#include "model/recurrent_model.h"

#include <cstring>
#include <string>

#include "core/error.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"

namespace rwkv_embed {

void BlockStateShape::Reset(BlockState& b) const {
  b.time_shift.assign(hidden, 0.0f);
  b.wkv.assign(heads * head_size * head_size, 0.0f);
  b.channel_shift.assign(hidden, 0.0f);
}

ForwardResult RunBlockStack(const SequenceModel& model, const StackWeights& weights,
                            BlockStack& blocks, Matrix& x, const TokenBatch& batch,
                            const ForwardOptions& options, const HiddenStateTap& tap,
                            std::span<const SequenceState> initial_states) {
  const int64_t L = model.num_blocks(), C = model.hidden_size(), n_seq = batch.num_sequences();
  const int last_layer = static_cast<int>(L) + 1;
  const double eps = weights.layer_norm_epsilon;
  CheckForwardArguments(model, batch, options, tap, initial_states);
  if (options.logits && weights.head.data == nullptr) {
    throw UsageError("logits requested but the checkpoint has no LM head (" + model.Describe() +
                     ")");
  }
  std::vector<uint8_t> want(last_layer + 1, 0);
  for (int layer : options.layers) want[layer] = 1;
  const std::vector<uint8_t> keep_state = StatesToKeep(options, n_seq);

  ForwardResult result;
  if (options.return_states) result.states.resize(n_seq);
  x.Resize(batch.num_tokens(), C);
  kernels::GatherRows(weights.embeddings, batch.tokens, x.data());
  kernels::LayerNormRows(x.data(), x.rows(), C, weights.ln0.weight.data(), weights.ln0.bias.data(),
                         eps, x.data());
  if (want[0]) tap(0, x);

  const BlockOverride no_override;
  // The recurrent state of one block at a time: a WKV state is H*S*S floats per sequence
  // (512 KiB for Finch-1B6), so holding every block's for a whole batch would cost more than the
  // activations. Each block's final state moves to the result only when asked for.
  std::vector<BlockState> block_states(n_seq);
  std::vector<BlockState*> states(n_seq);
  for (int64_t s = 0; s < n_seq; ++s) states[s] = &block_states[s];
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t s = 0; s < n_seq; ++s) {
      if (initial_states.empty() || initial_states[s].empty()) {
        weights.state.Reset(block_states[s]);
      } else {
        block_states[s] = initial_states[s][i];
      }
    }
    const BlockOverride& ov = options.overrides.empty() ? no_override : options.overrides[i];
    blocks.RunBlock(i, ov, x, states);
    if (options.return_states) {
      for (int64_t s = 0; s < n_seq; ++s) {
        if (keep_state[s]) result.states[s].push_back(block_states[s]);
      }
    }
    if (want[i + 1]) tap(static_cast<int>(i) + 1, x);
  }

  if (want[last_layer] || options.logits) {
    kernels::LayerNormRows(x.data(), x.rows(), C, weights.ln_out.weight.data(),
                           weights.ln_out.bias.data(), eps, x.data());
    if (want[last_layer]) tap(last_layer, x);
    if (options.logits) {
      Matrix last(n_seq, C);
      for (int64_t s = 0; s < n_seq; ++s) {
        std::memcpy(last.Row(s), x.Row(batch.offsets[s + 1] - 1), C * sizeof(float));
      }
      result.logits.Resize(n_seq, weights.head.rows);
      kernels::MatMulT(last.data(), n_seq, weights.head, result.logits.data(), options.precision);
    }
  }
  return result;
}

}  // namespace rwkv_embed
