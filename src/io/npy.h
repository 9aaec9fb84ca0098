// NumPy .npy (format version 1.0) writing and reading for float32 arrays.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace rwkv_embed {

// Writes a little-endian float32 C-order array of `shape`. Throws IoError naming the path.
void WriteNpyF32(const std::filesystem::path& path, std::span<const int64_t> shape,
                 std::span<const float> data);

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
// Reads a '<f4' C-order .npy; throws FormatError naming the path on anything else.
NpyArray ReadNpyF32(const std::filesystem::path& path);

}  // namespace rwkv_embed
