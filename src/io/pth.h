// PyTorch checkpoints (torch.save's zip format: BlinkDL/RWKV-LM `.pth` releases, EmbeddingRWKV,
// Hugging Face `pytorch_model.bin`), read without Python. The archive is
//   <prefix>/data.pkl     the pickled state dict (io/pickle.h: read, never executed)
//   <prefix>/data/<key>   one stored (uncompressed) entry per storage, memory-mapped in place
//   <prefix>/version, <prefix>/byteorder (optional, must be "little"), ...
// where <prefix> is whatever folder name the writer chose (taken from the data.pkl entry).
// Nested dicts are flattened with '.' ({"model": {"w": t}} -> "model.w"); non-tensor leaves
// (ints, strings, the `_metadata` of a module state dict) are skipped. Tensors must be contiguous
// (a strided view is a FormatError naming it; torch.save of a state dict never writes one);
// storage offsets and several tensors sharing one storage are supported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "io/safetensors.h"

namespace rwkv_embed {

// The tensors of a torch zip archive held in `bytes` (views into it), in pickle order. `file`
// names the archive in messages and is what each TensorView::file points at; both must outlive
// the result. Throws FormatError naming the file and the entry, opcode, global or tensor at
// fault: truncation, corrupt zip records, compressed entries, forbidden globals, storages out of
// range, unsupported dtypes, non-contiguous tensors, duplicate names.
std::vector<TensorView> ReadPthTensors(std::span<const std::byte> bytes,
                                       const std::filesystem::path& file);

// Whether `bytes` start like a torch checkpoint of the legacy (PyTorch < 1.6) non-zip format.
bool IsLegacyTorchFormat(std::span<const std::byte> bytes);

// A memory-mapped .pth / pytorch_model.bin file and its tensors.
class PthFile {
 public:
  // Throws IoError (cannot open/map) or FormatError (see ReadPthTensors).
  static PthFile Open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }

 private:
  std::unique_ptr<MappedFile> file_;  // pointer so TensorView::file stays stable across moves
  std::vector<TensorView> tensors_;
};

// Seam for a libFuzzer target: parses `data` as a .pth archive and touches every tensor byte
// range. Returns true if it parsed, false on a rwkv_embed::Error (bad input, as expected); any
// other exception or a sanitizer report is a bug.
bool ParsePthForFuzzing(std::span<const uint8_t> data);

}  // namespace rwkv_embed
