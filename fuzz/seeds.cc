// fuzz_seeds OUT_DIR SHARED_DIR: writes the seed files that come from the project's own writers:
//   OUT_DIR/safetensors/  the tensor tables of the shared models, first block only, with every
//                         dimension cut to <= 2 (same names, dtypes and metadata, a few bytes of
//                         data), and small files of every dtype;
//   OUT_DIR/npy/          float32 .npy files of several shapes.
// fuzz/make-corpus.sh runs it; the rest of the corpus is sliced from the shared files directly.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/npy.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using rwkv_embed::DType;
using rwkv_embed::TensorToWrite;

namespace {

// A small tensor of `dtype` whose bytes are a repeating pattern (NaN bit patterns included).
TensorToWrite Small(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  TensorToWrite t{name, dtype, std::move(shape), {}};
  size_t n = rwkv_embed::DTypeSize(dtype);
  for (int64_t d : t.shape) n *= static_cast<size_t>(d);
  t.bytes.resize(n);
  for (size_t i = 0; i < n; ++i) t.bytes[i] = static_cast<std::byte>(i * 37 + 0x7f);
  return t;
}

// Whether `name` belongs to a block after the first ("blocks.1.", "model.layers.11."): seeds keep
// one block of each model, since the header's size is what slows every execution down.
bool InLaterBlock(const std::string& name) {
  for (const char* prefix : {"blocks.", "layers."}) {
    const size_t at = name.find(prefix);
    if (at != std::string::npos) return name.compare(at + std::strlen(prefix), 2, "0.") != 0;
  }
  return false;
}

// The shared model's tensor table, first block only, with each dimension cut to at most 2.
void WriteShrunk(const fs::path& model, const fs::path& out) {
  const auto file = rwkv_embed::SafetensorsFile::Open(model);
  std::vector<TensorToWrite> tensors;
  for (const rwkv_embed::TensorView& t : file.tensors()) {
    if (InLaterBlock(t.name)) continue;
    std::vector<int64_t> shape = t.shape;
    for (int64_t& d : shape) d = std::min<int64_t>(d, 2);
    TensorToWrite small = Small(t.name, t.dtype, shape);
    std::memcpy(small.bytes.data(), t.bytes.data(), std::min(small.bytes.size(), t.bytes.size()));
    tensors.push_back(std::move(small));
  }
  rwkv_embed::WriteSafetensors(out, tensors, file.metadata());
}

void WriteSafetensorsSeeds(const fs::path& dir, const fs::path& shared) {
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(shared / "models")) {
    const fs::path model = entry.path() / "model.safetensors";
    if (fs::exists(model)) WriteShrunk(model, dir / (entry.path().filename().string() + ".st"));
  }
  std::vector<TensorToWrite> all_dtypes;
  for (DType t : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64, DType::kI32,
                  DType::kI16, DType::kI8, DType::kU8, DType::kBool}) {
    all_dtypes.push_back(Small(std::string("t_") + std::string(rwkv_embed::DTypeName(t)), t, {3}));
  }
  rwkv_embed::WriteSafetensors(dir / "all-dtypes.st", all_dtypes);
  rwkv_embed::WriteSafetensors(
      dir / "scalar-and-empty.st",
      {Small("scalar", DType::kBF16, {}), Small("empty", DType::kF32, {0, 4})}, {{"format", "pt"}});
  rwkv_embed::WriteSafetensors(dir / "no-tensors.st", {});
}

void WriteNpySeeds(const fs::path& dir) {
  fs::create_directories(dir);
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3}, {2, 3}, {2, 1, 4}, {4, 0, 2}};
  int i = 0;
  for (const auto& shape : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    for (size_t k = 0; k < values.size(); ++k) values[k] = 0.5f * static_cast<float>(k) - 1;
    if (!values.empty()) values.back() = std::numeric_limits<float>::quiet_NaN();
    rwkv_embed::WriteNpyF32(dir / ("seed" + std::to_string(i++) + ".npy"), shape, values);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR SHARED_DIR\n");
    return 2;
  }
  try {
    WriteSafetensorsSeeds(fs::path(argv[1]) / "safetensors", argv[2]);
    WriteNpySeeds(fs::path(argv[1]) / "npy");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
