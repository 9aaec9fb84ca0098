#include "model/sequence_model.h"

#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace rwkv_embed {

void TokenBatch::Add(std::span<const int32_t> sequence) {
  tokens.insert(tokens.end(), sequence.begin(), sequence.end());
  offsets.push_back(static_cast<int64_t>(tokens.size()));
}

void CheckForwardArguments(const SequenceModel& model, const TokenBatch& batch,
                           const ForwardOptions& options, const HiddenStateTap& tap,
                           std::span<const SequenceState> initial_states) {
  const int64_t L = model.num_blocks(), n_seq = batch.num_sequences();
  const int last_layer = static_cast<int>(L) + 1;
  for (int layer : options.layers) {
    if (layer < 0 || layer > last_layer) {
      throw UsageError("layer " + std::to_string(layer) + " out of range 0.." +
                       std::to_string(last_layer) + " for this model");
    }
  }
  if (!options.layers.empty() && !tap) throw UsageError("layers requested without a tap");
  if (!options.overrides.empty() && static_cast<int64_t>(options.overrides.size()) != L) {
    throw UsageError("block overrides: got " + std::to_string(options.overrides.size()) +
                     ", model has " + std::to_string(L) + " blocks");
  }
  if (!initial_states.empty() && static_cast<int64_t>(initial_states.size()) != n_seq) {
    throw UsageError("initial states: got " + std::to_string(initial_states.size()) + " for " +
                     std::to_string(n_seq) + " sequences");
  }
  for (int64_t s = 0; s < n_seq; ++s) {
    if (batch.length(s) <= 0) throw UsageError("sequence " + std::to_string(s) + " is empty");
    if (!initial_states.empty() && !initial_states[s].empty() &&
        static_cast<int64_t>(initial_states[s].size()) != L) {
      throw UsageError("initial state of sequence " + std::to_string(s) + " has " +
                       std::to_string(initial_states[s].size()) + " blocks, model has " +
                       std::to_string(L));
    }
  }
  if (!initial_states.empty()) {
    const SequenceState zero = model.ZeroState();
    for (int64_t s = 0; s < n_seq; ++s) {
      if (initial_states[s].empty()) continue;  // starts from zeros
      for (int64_t b = 0; b < L; ++b) {
        const BlockState &got = initial_states[s][b], &want = zero[b];
        if (got.time_shift.size() != want.time_shift.size() || got.wkv.size() != want.wkv.size() ||
            got.channel_shift.size() != want.channel_shift.size()) {
          throw UsageError(
              "initial state of sequence " + std::to_string(s) + ", block " + std::to_string(b) +
              " has sizes " + std::to_string(got.time_shift.size()) + "/" +
              std::to_string(got.wkv.size()) + "/" + std::to_string(got.channel_shift.size()) +
              ", model needs " + std::to_string(want.time_shift.size()) + "/" +
              std::to_string(want.wkv.size()) + "/" + std::to_string(want.channel_shift.size()));
        }
      }
    }
  }
  const int64_t V = model.vocab_size();
  for (int32_t id : batch.tokens) {
    if (id < 0 || id >= V) {
      throw UsageError("token id " + std::to_string(id) + " out of range 0.." +
                       std::to_string(V - 1));
    }
  }
}

std::vector<uint8_t> StatesToKeep(const ForwardOptions& options, int64_t num_sequences) {
  std::vector<uint8_t> keep(num_sequences, options.state_sequences.empty() ? 1 : 0);
  for (int64_t s : options.state_sequences) {
    if (s < 0 || s >= num_sequences) {
      throw UsageError("state of sequence " + std::to_string(s) + " asked for; the batch has " +
                       std::to_string(num_sequences));
    }
    keep[s] = 1;
  }
  return keep;
}

Matrix DenseWeightRows(const kernels::WeightMatrix& w) {
  Matrix out(w.rows, w.cols);
  const auto* bytes = static_cast<const std::byte*>(w.data);
  for (int64_t r = 0; r < w.rows; ++r) {
    float* dst = out.Row(r);
    switch (w.dtype) {
      case DType::kF32:
        std::memcpy(dst, bytes + r * w.cols * 4, w.cols * sizeof(float));
        break;
      case DType::kBF16:
        Bf16ToF32Row(bytes + r * w.cols * 2, w.cols, dst);
        break;
      case DType::kF16:
        for (int64_t j = 0; j < w.cols; ++j) {
          uint16_t h = 0;
          std::memcpy(&h, bytes + (r * w.cols + j) * 2, 2);  // may be unaligned (mapped file)
          dst[j] = F16ToF32(h);
        }
        break;
      default:
        throw UsageError("DenseWeightRows: weights of dtype " + std::string(DTypeName(w.dtype)) +
                         " are not a float matrix");
    }
  }
  return out;
}

}  // namespace rwkv_embed
