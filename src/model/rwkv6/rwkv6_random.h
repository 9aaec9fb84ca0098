// Random-weight RWKV-6 checkpoints in the exact Hugging Face layout, for benchmarks, demos, the
// "random weights" control of the evaluation, and tests of the loaders.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "model/rwkv6/rwkv6_config.h"

namespace rwkv_embed {

struct ModelPreset {
  std::string name;
  std::string description;
  ModelConfig config;  // time_mix_extra_dim / time_decay_extra_dim set (LoRA ranks)
};

// tiny (the shared tiny-rwkv6-bf16 shape), finch-1b6, finch-3b, finch-7b, finch-14b.
const std::vector<ModelPreset>& ModelPresets();
const ModelPreset& FindModelPreset(std::string_view name);  // UsageError listing valid names

struct RandomModelOptions {
  DType dtype = DType::kBF16;  // F32, F16 or BF16
  uint64_t seed = 0;
  bool original_names = false;  // RWKV authors' names (emb, blocks.N.att, ...) instead of HF's
  int shards = 1;               // > 1: model-0000i-of-0000N.safetensors + index json
  std::filesystem::path vocab;  // copied into the folder when given
  // out_dir may already hold files: the ones init-model owns are replaced, the rest kept.
  bool force = false;
};

// Bytes of the tensors WriteRandomModel writes for `config` (dims must be positive); nullopt when
// the sum does not fit in 64 bits.
std::optional<uint64_t> RandomModelBytes(const ModelConfig& config, DType dtype);

// Writes config.json (marked "rwkv_embed_random_weights": true) and the weights into out_dir.
// Deterministic for a seed: each tensor's values depend only on (seed, tensor name).
//
// Refuses (UsageError) before generating anything: shapes out of ModelConfig's limits, a
// checkpoint larger than the available memory (it is generated in memory) or disk, and an out_dir
// that is not empty unless options.force. With force, only the files init-model owns
// (config.json, model*.safetensors, model.safetensors.index.json, and the vocabulary when one is
// copied) are removed, so no stale single file can shadow a new sharded index. Everything is
// written into out_dir/.init-model.partial/ and moved into place only once complete: a failure
// leaves out_dir as it was.
void WriteRandomModel(const ModelConfig& config, const RandomModelOptions& options,
                      const std::filesystem::path& out_dir);

// The discipline every init-model writer follows: `bytes` (the checkpoint's size, held in memory
// once) checked against memory and disk (UsageError naming `what`), a non-empty out_dir refused
// unless `force`, the files written by `write` into a staging folder inside out_dir and moved
// into place only when complete (then init-model's own stale files removed), so a failure leaves
// out_dir as it was.
void WriteStagedModelFolder(const std::filesystem::path& out_dir, bool force, uint64_t bytes,
                            const std::string& what,
                            const std::function<void(const std::filesystem::path&)>& write);

}  // namespace rwkv_embed
