// Random-weight RWKV-7 ("Goose", x070) checkpoints in either naming (authors' RWKV-LM or fla/HF),
// for benchmarks at the released shapes, the evaluation's random-weights control and loader
// tests. The RWKV-6 writer is model/rwkv6/rwkv6_random.h; init-model dispatches between them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "model/rwkv7/rwkv7_weights.h"

namespace rwkv_embed {

struct Rwkv7Preset {
  std::string name;
  std::string description;
  Rwkv7Config config;  // every size, LoRA ranks included
};

// goose-tiny (the shape of shared/models/tiny-rwkv7-bf16), goose-0.1b, goose-0.4b, goose-1.5b,
// goose-2.9b: the released shapes and LoRA ranks
// (docs/checkpoints.md#random-weight-checkpoints-init-model lists the sources that confirm them).
const std::vector<Rwkv7Preset>& Rwkv7Presets();
// nullptr when `name` is not an RWKV-7 preset.
const Rwkv7Preset* FindRwkv7Preset(std::string_view name);

struct Rwkv7RandomOptions {
  DType dtype = DType::kBF16;  // F32 or BF16 (the dtypes RWKV-7 checkpoints ship in)
  uint64_t seed = 0;
  Rwkv7Naming naming = Rwkv7Naming::kFla;
  std::filesystem::path vocab;  // copied into the folder when given
  bool force = false;           // write into a non-empty folder (see WriteStagedModelFolder)
};

// Bytes of the tensors WriteRandomRwkv7Model would hold in memory and write; nullopt when the
// shape overflows 64 bits. Allocates nothing.
std::optional<uint64_t> Rwkv7RandomModelBytes(const Rwkv7Config& config, DType dtype);

// Writes config.json (marked "rwkv_embed_random_weights": true; fla fields, which the authors'
// naming ignores but for the marker) and model.safetensors into out_dir. Each tensor's values
// depend only on (seed, authors' tensor name), so both namings of one seed hold the same model
// (LoRA factors transposed for fla). Scaled like a trained model so that activations stay finite
// and informative through every block. Throws UsageError for an invalid shape, dtype, or a model
// larger than the memory available (checked before anything is allocated).
void WriteRandomRwkv7Model(const Rwkv7Config& config, const Rwkv7RandomOptions& options,
                           const std::filesystem::path& out_dir);

}  // namespace rwkv_embed
