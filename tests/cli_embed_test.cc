// End to end: `rwkv-embed embed` and `init-model` as a user runs them.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using testing::RunCli;

// Golden texts without newlines (one sentence per input line), with their golden indices.
std::vector<std::pair<int, std::string>> GoldenLines(const std::filesystem::path& golden_json) {
  std::ifstream in(golden_json);
  const auto j = nlohmann::json::parse(in);
  std::vector<std::pair<int, std::string>> lines;
  for (const auto& s : j["sequences"]) {
    const auto text = s["text"].get<std::string>();
    if (text.find('\n') == std::string::npos && !text.empty()) {
      lines.emplace_back(s["index"].get<int>(), text);
    }
  }
  return lines;
}

TEST(CliEmbedTest, NpyOutputReproducesGoldenMeansOfEveryLayer) {
  RWKV_EMBED_REQUIRE_SHARED(golden, "models/tiny-rwkv6-bf16/golden.safetensors");
  const auto dir = golden.parent_path();
  const auto lines = GoldenLines(dir / "golden.json");
  ASSERT_GE(lines.size(), 8u);
  const auto tmp = testing::TempDir();
  {
    std::ofstream in(tmp / "in.txt");
    for (const auto& [i, text] : lines) in << text << "\n";
  }
  const auto run =
      RunCli({"embed", "--model", dir.string(), "--input", (tmp / "in.txt").string(), "--output",
              (tmp / "out.npy").string(), "--layers", "all", "--pooling", "mean"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const NpyArray got = ReadNpyF32(tmp / "out.npy");
  const int64_t layers = 5, C = 128, n = static_cast<int64_t>(lines.size());
  ASSERT_EQ(got.shape, (std::vector<int64_t>{layers, n, C}));
  const auto store = TensorStore::Open(golden);
  double worst = 0;
  for (int64_t s = 0; s < n; ++s) {
    const auto ref = ToFloat32(store.Get("seq" + std::to_string(lines[s].first) + ".mean"));
    for (int64_t l = 0; l < layers; ++l) {
      const auto r = testing::CompareClose(std::span(got.data).subspan((l * n + s) * C, C),
                                           std::span(ref).subspan(l * C, C), 2e-5, 1e-4);
      EXPECT_EQ(r.violations, 0u) << "seq " << lines[s].first << " layer " << l << ": "
                                  << r.Describe();
      worst = std::max(worst, r.max_abs_error);
    }
  }
  std::cout << "embed CLI vs golden seq{i}.mean: max_abs_error=" << worst << "\n";
}

TEST(CliEmbedTest, JsonlOutputWithHfIndicesAndL2Normalization) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto tmp = testing::TempDir();
  const auto run = RunCli({"embed", "--model", dir.parent_path().string(), "--input", "-",
                           "--output", (tmp / "o.jsonl").string(), "--layers", "0,2", "--hf-index",
                           "--normalize", "l2", "--pooling", "last"},
                          "first sentence\nsecond one\r\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(tmp / "o.jsonl");
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["index"], count);
    ASSERT_TRUE(j["layers"].contains("1"));  // HF index 0 = our layer 1
    ASSERT_TRUE(j["layers"].contains("3"));  // HF index 2 = our layer 3 (after ln_out)
    double ss = 0;
    for (double v : j["layers"]["3"]) ss += v * v;
    EXPECT_NEAR(ss, 1.0, 1e-5);
    ++count;
  }
  EXPECT_EQ(count, 2);
}

// Large inputs are embedded a chunk of sentences at a time and written piecewise; the result is
// the same bytes as one chunk (batch-invariant kernels), in .npy and .jsonl alike.
TEST(CliEmbedTest, ChunkedStreamingGivesIdenticalOutput) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto tmp = testing::TempDir();
  std::string input;
  for (int i = 0; i < 11; ++i) input += "sentence number " + std::to_string(i * 7) + " here\n";
  for (const char* ext : {".npy", ".jsonl"}) {
    const auto one = tmp / (std::string("one") + ext), many = tmp / (std::string("many") + ext);
    auto r = RunCli({"embed", "--model", dir.parent_path().string(), "--output", one.string(),
                     "--layers", "0,2-3"},
                    input);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = RunCli({"embed", "--model", dir.parent_path().string(), "--output", many.string(),
                "--layers", "0,2-3", "--chunk-sentences", "3", "--batch-tokens", "5"},
               input);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(testing::ReadFile(one), testing::ReadFile(many)) << ext;
    EXPECT_FALSE(std::filesystem::exists(many.string() + ".partial"));
  }
  EXPECT_EQ(ReadNpyF32(tmp / "one.npy").shape, (std::vector<int64_t>{3, 11, 128}));
}

TEST(CliEmbedTest, BadInputGivesClearErrorsAndExitCodes) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-bf16/model.safetensors");
  const std::string model = dir.parent_path().string();
  const auto out = (testing::TempDir() / "o.npy").string();
  auto r = RunCli({"embed", "--model", model, "--output", out}, "fine\n\xff\xfe broken\n");
  EXPECT_EQ(r.exit_code, 4) << r.err;  // FormatError
  EXPECT_NE(r.err.find("stdin line 2"), std::string::npos) << r.err;
  r = RunCli({"embed", "--model", model, "--output", out}, "one\n\nthree\n");
  EXPECT_EQ(r.exit_code, 6) << r.err;  // DataError
  EXPECT_NE(r.err.find("line 2 is empty"), std::string::npos) << r.err;
  r = RunCli({"embed", "--model", model, "--output", out, "--layers", "7"}, "x\n");
  EXPECT_EQ(r.exit_code, 2) << r.err;  // UsageError
  EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
  r = RunCli({"embed", "--model", model, "--output", out, "--pooling", "median"}, "x\n");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = RunCli({"embed", "--model", "/nonexistent/model", "--output", out}, "x\n");
  EXPECT_EQ(r.exit_code, 3) << r.err;  // IoError
  EXPECT_NE(r.err.find("/nonexistent/model"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(CliInitModelTest, WritesALoadableRandomModel) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  const auto tmp = testing::TempDir();
  auto r = RunCli({"init-model", "--preset", "tiny", "--dtype", "f32", "--out",
                   (tmp / "m").string(), "--vocab", vocab.string(), "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream cfg(tmp / "m/config.json");
  const auto j = nlohmann::json::parse(cfg);
  EXPECT_EQ(j["rwkv_embed_random_weights"], true);
  EXPECT_EQ(j["hidden_size"], 128);
  r = RunCli({"embed", "--model", (tmp / "m").string(), "--output", (tmp / "e.npy").string()},
             "hello world\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadNpyF32(tmp / "e.npy").shape, (std::vector<int64_t>{1, 1, 128}));
  r = RunCli({"init-model", "--preset", "huge", "--out", (tmp / "x").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("finch-1b6"), std::string::npos) << r.err;
}

TEST(CliInfoTest, DescribesLayersAndFindsNonFiniteWeights) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-f32/model.safetensors");
  auto r = RunCli({"info", "--model", dir.parent_path().string(), "--check-weights"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("LoRA 16/24"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 (after ln_out) (HF hidden_states[2])"), std::string::npos) << r.out;

  // Poison one weight with NaN in a copy: --check-weights must name it (exit code 7).
  const auto tmp = testing::TempDir();
  std::filesystem::copy(dir.parent_path(), tmp / "m");
  std::filesystem::permissions(tmp / "m/model.safetensors", std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  // Locate the tensor through the safetensors header: 8-byte length, JSON, data region.
  std::ifstream in(tmp / "m/model.safetensors", std::ios::binary);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  in.close();
  const auto j = nlohmann::json::parse(header);
  const size_t offset =
      8 + header_len +
      j["rwkv.blocks.1.feed_forward.value.weight"]["data_offsets"][0].get<size_t>() + 4 * 5;
  {
    std::fstream f(tmp / "m/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    const float nan = std::nanf("");
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(reinterpret_cast<const char*>(&nan), 4);
  }
  r = RunCli({"info", "--model", (tmp / "m").string(), "--check-weights"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("rwkv.blocks.1.feed_forward.value.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("element 5"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace rwkv_embed
