// Tensor data at odd addresses. A safetensors header may have any length, so a legal file can put
// its data region (and every BF16/F32 tensor in it) at an odd offset of the mapping. The audit
// found EmbedTokens reading uint16_t through such a pointer (undefined behaviour, reported by
// UBSan in the debug preset). These tests load such files and multiply such weights on every GEMM
// path; run under the debug preset (ASan + UBSan, halt on error) they fail before the fix.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "kernels/gemm.h"
#include "model/rwkv6/rwkv6.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;

// Copies the model folder holding `model` (config.json and model.safetensors) to `dir`, with the
// safetensors header re-padded to an odd length: same JSON, same tensor bytes, data region at an
// odd file offset.
fs::path OddOffsetCopy(const fs::path& model, const fs::path& dir) {
  const std::string bytes = ReadFile(model);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::string header = bytes.substr(8, n);
  while (!header.empty() && header.back() == ' ') header.pop_back();
  if (header.size() % 2 == 0) header.push_back(' ');  // trailing spaces are legal padding
  const uint64_t odd = header.size();
  fs::create_directories(dir);
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&odd), 8);
  out << header << bytes.substr(8 + n);
  out.close();
  fs::copy_file(model.parent_path() / "config.json", dir / "config.json");
  return dir;
}

// Every layer's hidden states for a few packed sequences.
std::map<int, std::vector<float>> AllLayers(const Rwkv6Model& m, kernels::MatMulPrecision p) {
  TokenBatch batch;
  batch.Add(std::vector<int32_t>{95, 319, 225, 47, 0, 999, 33});
  batch.Add(std::vector<int32_t>{1, 65535, 2});
  ForwardOptions opts;
  for (int l = 0; l < m.num_layer_taps(); ++l) opts.layers.push_back(l);
  opts.logits = true;
  opts.precision = p;
  std::map<int, std::vector<float>> out;
  const ForwardResult r = m.Forward(batch, opts, [&](int layer, const Matrix& h) {
    out[layer].assign(h.Flat().begin(), h.Flat().end());
  });
  out[-1].assign(r.logits.Flat().begin(), r.logits.Flat().end());
  return out;
}

void ExpectSameEmbeddings(const char* relative) {
  const fs::path model = testing::SharedFile(relative);
  if (model.empty()) GTEST_SKIP() << "shared file absent: " << relative;
  const fs::path odd_dir = OddOffsetCopy(model, testing::TempDir() / "odd");
  Rwkv6Model aligned(ModelWeights::Load(model.parent_path()));
  Rwkv6Model odd(ModelWeights::Load(odd_dir));
  // The copy really is misaligned for its element type (the test is void otherwise).
  const auto address = reinterpret_cast<uintptr_t>(odd.weights().embeddings().data);
  EXPECT_EQ(address % 2, 1u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(odd.weights().head().data) % 2, 1u);
  for (auto p : {kernels::MatMulPrecision::kF32, kernels::MatMulPrecision::kBF16}) {
    const auto want = AllLayers(aligned, p);
    const auto got = AllLayers(odd, p);
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [layer, values] : want) {
      EXPECT_EQ(got.at(layer), values) << relative << " layer " << layer;  // bit-identical
    }
  }
}

TEST(OddOffsetTest, Bf16ModelEmbedsIdentically) {
  ExpectSameEmbeddings("models/tiny-rwkv6-bf16/model.safetensors");
}

TEST(OddOffsetTest, F32ModelEmbedsIdentically) {
  ExpectSameEmbeddings("models/tiny-rwkv6-f32/model.safetensors");
}

TEST(OddOffsetTest, EveryGemmPathReadsMisalignedWeights) {
  // Shapes that reach every kernel's edge handling (AMX tiles and their AVX-512 remainder).
  constexpr int64_t m = 37, n = 50, k = 96;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(m * k);
  for (float& v : x) v = u(rng);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const size_t bytes = static_cast<size_t>(n * k) * DTypeSize(dtype);
    std::vector<std::byte> aligned(bytes), shifted(bytes + 1);
    for (int64_t i = 0; i < n * k; ++i) {
      const float f = u(rng);
      if (dtype == DType::kF32) {
        std::memcpy(aligned.data() + 4 * i, &f, 4);
      } else {
        const uint16_t h = F32ToBf16(f);
        std::memcpy(aligned.data() + 2 * i, &h, 2);
      }
    }
    std::memcpy(shifted.data() + 1, aligned.data(), bytes);  // same values at an odd address
    const kernels::WeightMatrix wa{dtype, aligned.data(), n, k};
    const kernels::WeightMatrix wo{dtype, shifted.data() + 1, n, k};
    for (kernels::GemmPath path : kernels::kAllGemmPaths) {  // every path, oneDNN and AVX2 too
      if (!kernels::GemmPathAvailable(path)) continue;
      for (auto p : {kernels::MatMulPrecision::kF32, kernels::MatMulPrecision::kBF16}) {
        if (!kernels::GemmPathAccepts(path, dtype, p)) continue;
        std::vector<float> ya(m * n), yo(m * n);
        kernels::MatMulTWithPath(path, x.data(), m, wa, ya.data(), p);
        kernels::MatMulTWithPath(path, x.data(), m, wo, yo.data(), p);
        EXPECT_EQ(yo, ya) << kernels::GemmPathName(path) << " " << DTypeName(dtype);
      }
    }
  }
}

}  // namespace
}  // namespace rwkv_embed
