// Opening any supported checkpoint as one TensorStore, the format chosen by content, and copying
// one to safetensors. Model loaders call OpenCheckpoint; nothing above io/ needs to know formats.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace rwkv_embed {

enum class CheckpointFormat { kSafetensors, kPth };

struct CheckpointLocation {
  CheckpointFormat format = CheckpointFormat::kSafetensors;
  std::filesystem::path path;                // the file or index that describes the checkpoint
  std::vector<std::filesystem::path> files;  // the files holding tensors (an index's shards)
};

// Where the tensors of `path` are. A folder is searched, first match wins, for
//   model.safetensors, model.safetensors.index.json   (Hugging Face safetensors)
//   model.pth, pytorch_model.bin, pytorch_model.bin.index.json   (torch.save zip archives)
//   a single *.pth file                               (BlinkDL / EmbeddingRWKV releases)
// A file is a torch archive when it starts with the zip signature (or the legacy torch magic,
// rejected when opened), a torch shard index when it is a *.json other than
// *.safetensors.index.json, else safetensors. Throws IoError naming the folder when it holds
// none of these, FormatError for an unreadable index.
CheckpointLocation LocateCheckpoint(const std::filesystem::path& path);

// All tensors of the checkpoint at `path` (see LocateCheckpoint), memory-mapped. Throws
// IoError/FormatError naming the file and tensor.
TensorStore OpenCheckpoint(const std::filesystem::path& path);

// Writes every tensor of `store` to the safetensors file `out`: same names, dtypes, shapes and
// bytes. Written to `out`.partial and renamed over `out` only when complete, so a failure leaves
// any previous `out` intact. UsageError when `out` is one of the store's own files.
void WriteSafetensorsCopy(const TensorStore& store, const CheckpointLocation& source,
                          const std::filesystem::path& out,
                          const std::map<std::string, std::string>& metadata);

}  // namespace rwkv_embed
