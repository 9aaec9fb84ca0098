// Memory-mapped safetensors reading (single files and sharded checkpoints) and writing.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data region; offsets are relative to the data region's start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace rwkv_embed {

// A read-only memory mapping of a whole file. Move-only.
class MappedFile {
 public:
  // Throws IoError naming the path if it cannot be opened or mapped. An empty file maps to an
  // empty span.
  static MappedFile Open(const std::filesystem::path& path);
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// A tensor inside a mapped file; the bytes stay valid while the owning file/store lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
  const std::filesystem::path* file = nullptr;  // the file it came from (for error messages)

  int64_t numel() const;
  std::string ShapeString() const;  // "[5, 32, 128]"
};

// One .safetensors file. Open() validates the whole header: its length against the file size,
// JSON syntax, known dtypes, shape x dtype size == byte length, offsets in range, and that the
// tensors cover the data region exactly (no bytes before, between or after them, no overlaps).
// Every error is a FormatError naming the file (and tensor or gap, where one is at fault).
// Tensor data may start at any address (an odd header length is legal): readers of
// TensorView::bytes must not assume alignment.
class SafetensorsFile {
 public:
  static SafetensorsFile Open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::unique_ptr<MappedFile> file_;  // pointer so TensorView::file stays stable across moves
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint: one file, or the shards listed by model.safetensors.index.json.
class TensorStore {
 public:
  // `path` is a .safetensors file, a *.safetensors.index.json, or a directory holding
  // model.safetensors or model.safetensors.index.json (not both: that is ambiguous, a
  // FormatError naming both). An index's shards must lie inside its folder (relative names, no
  // "..", no symbolic link out of it); an index over 64 MiB is refused before it is read.
  // Throws IoError/FormatError.
  static TensorStore Open(const std::filesystem::path& path);
  // A store over tensors parsed by another reader (io/pth.h); `owners` keep their bytes (and
  // the paths their `file` points at) alive. A name given twice is a FormatError.
  // io/checkpoint.h's OpenCheckpoint picks the reader from a path's content.
  static TensorStore FromViews(std::vector<TensorView> tensors,
                               std::vector<std::shared_ptr<const void>> owners,
                               std::string description);

  const TensorView* Find(std::string_view name) const;
  // Throws ShapeError "tensor 'NAME' not found in PATH" when absent.
  const TensorView& Get(std::string_view name) const;
  std::vector<std::string> Names() const;  // sorted
  std::string Describe() const;            // the file(s) it was read from
  size_t TotalBytes() const;               // sum of tensor byte sizes

 private:
  std::vector<SafetensorsFile> files_;
  std::vector<TensorView> views_;  // FromViews
  std::vector<std::shared_ptr<const void>> owners_;
  std::string description_;  // FromViews; else Describe() lists files_
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

// Element i of a tensor as float (F64/F32/F16/BF16 and integer types).
std::vector<float> ToFloat32(const TensorView& t);

// Index of the first NaN/Inf element, if any (floating dtypes only).
std::optional<int64_t> FindNonFinite(const TensorView& t);

// A tensor to write: raw little-endian bytes of `dtype` in row-major order.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};
// Writes a valid safetensors file (tensors sorted by name, 8-byte aligned header).
void WriteSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// The same from views (e.g. of a mapped checkpoint): the bytes are streamed, not copied.
void WriteSafetensorsFromViews(const std::filesystem::path& path,
                               std::span<const TensorView> tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace rwkv_embed
