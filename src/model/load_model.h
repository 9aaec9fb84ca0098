// One entry point for every architecture: LoadModel recognises what a checkpoint holds from
// config.json `model_type` or, where there is none (RWKV-LM checkpoints ship no config), from
// its tensor names, and returns it behind the SequenceModel interface. Adding an architecture
// means a model file, its weight schema, and one line in each function here.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include "model/sequence_model.h"

namespace rwkv_embed {

class TensorStore;

enum class Architecture { kRwkv6, kRwkv7 };

std::string_view ArchitectureName(Architecture a);  // "rwkv6", "rwkv7"

// From tensor names alone: RWKV-7 has `att.k_k` (authors', also under `rwkv.`) or
// `attn.k_k` (fla); RWKV-6 has `time_maa_x` (HF or authors' names). ShapeError naming the
// checkpoint when neither is there.
Architecture DetectArchitecture(const TensorStore& store);

// `path`: a model folder or a checkpoint file. A config.json `model_type` (rwkv6 / rwkv7) must
// agree with the tensor names (FormatError otherwise, and for any other model_type).
Architecture DetectArchitecture(const std::filesystem::path& path);

// Loads the checkpoint at `path` as the architecture it holds. Throws IoError / FormatError /
// ShapeError / NumericError naming the file and tensor at fault.
std::unique_ptr<SequenceModel> LoadModel(const std::filesystem::path& path,
                                         const LoadOptions& options = {});

}  // namespace rwkv_embed
