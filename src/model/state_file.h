// A SequenceState saved to disk, so that a prefix (an instruction, a document) is run once and
// every later text continues from it ("state reuse"). The file is a safetensors file:
//   block.{i}.time_shift  F32 [C]        token-shift input of the time mix after the prefix
//   block.{i}.wkv         F32 [H, N, N]  per-head state matrix (the architecture's own layout)
//   block.{i}.channel_shift F32 [C]      token-shift input of the channel mix
// with metadata  format = "rwkv-embed sequence state 1", architecture ("rwkv6" / "rwkv7"),
// hidden_size, num_blocks, model (the model's Describe() line) and tokens (prefix length).
#pragma once

#include <cstdint>
#include <filesystem>

#include "model/sequence_model.h"

namespace rwkv_embed {

inline constexpr const char* kStateFileFormat = "rwkv-embed sequence state 1";

// Writes `state` of `model` after `tokens` prefix tokens. Written to PATH.partial and renamed
// into place, so a failure leaves any previous file intact. UsageError when `state` does not
// have the model's shape.
void SaveSequenceState(const std::filesystem::path& path, const SequenceModel& model,
                       const SequenceState& state, int64_t tokens);

// Reads a state saved by SaveSequenceState for `model`. IoError/FormatError for an unreadable
// file or one that is not a state file; ShapeError naming the file and the tensor or field when
// the architecture, the number of blocks or a tensor's shape differs from the model's.
SequenceState LoadSequenceState(const std::filesystem::path& path, const SequenceModel& model);

}  // namespace rwkv_embed
