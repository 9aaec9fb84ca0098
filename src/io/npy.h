// NumPy .npy (format version 1.0) writing and reading for float32 arrays.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace rwkv_embed {

// Writes a little-endian float32 C-order array of `shape`. Throws IoError naming the path.
void WriteNpyF32(const std::filesystem::path& path, std::span<const int64_t> shape,
                 std::span<const float> data);

// The bytes before the data of a float32 .npy of `shape` (magic, version 1.0, header dict padded
// so that the data starts on a 64-byte boundary): for writers that place rows themselves (the
// MPI ranks of a sharded embed). Throws ShapeError for a negative or overflowing shape.
std::string NpyF32Preamble(std::span<const int64_t> shape);

// Writes a float32 .npy of known shape piecewise, in any order (the embed command streams
// [layers, N, C] a batch of sentences at a time). Close() checks that every element was written.
class NpyF32Writer {
 public:
  NpyF32Writer(const std::filesystem::path& path, std::span<const int64_t> shape);
  // Writes values at flat (C-order) element offset. Throws ShapeError outside the array.
  void Write(int64_t element_offset, std::span<const float> values);
  void Close();

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  int64_t numel_ = 0;
  int64_t data_start_ = 0;
  int64_t written_ = 0;
};

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
// Reads a '<f4' C-order .npy; throws FormatError naming the path on anything else.
NpyArray ReadNpyF32(const std::filesystem::path& path);

}  // namespace rwkv_embed
