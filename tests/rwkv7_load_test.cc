// RWKV-7 checkpoints: sizes and LoRA ranks from shapes for both namings, architecture detection
// (config.json model_type or tensor names alone), and every error path naming what is at fault.
// Also the CLI on RWKV-7 folders: embed (World and byte-level tokenizers), --hf-index, info.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "model/load_model.h"
#include "model/rwkv7/rwkv7.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using testing::ExpectThrowMentioning;

constexpr const char* kFla = "models/tiny-rwkv7-f32/model.safetensors";
constexpr const char* kAuthors = "models/tiny-rwkv7-bf16/model.safetensors";
constexpr const char* kRwkvCpp = "models/rwkv.cpp-tiny-rwkv7/model.safetensors";

// Copies every tensor of `src` into DIR/model.safetensors, letting `edit` rename or alter it
// (return false to drop it), plus an optional config.json text.
std::filesystem::path CopyModel(const std::filesystem::path& src, const std::filesystem::path& dir,
                                const std::function<bool(TensorToWrite&)>& edit,
                                const std::string& config_json = "") {
  std::filesystem::create_directories(dir);
  WriteSafetensors(dir / "model.safetensors", testing::CopyTensors(TensorStore::Open(src), edit));
  if (!config_json.empty()) std::ofstream(dir / "config.json") << config_json;
  return dir;
}

std::vector<float> FinalLayer(const SequenceModel& m) {
  return testing::FinalLayer(m, std::vector<int32_t>{95, 119, 225, 47, 0, 99, 33});
}

TEST(Rwkv7LoadTest, SizesAndLoraRanksComeFromShapes) {
  RWKV_EMBED_REQUIRE_SHARED(fla, kFla);
  RWKV_EMBED_REQUIRE_SHARED(authors, kAuthors);
  RWKV_EMBED_REQUIRE_SHARED(cpp, kRwkvCpp);
  auto a = Rwkv7Weights::Load(fla.parent_path());
  const Rwkv7Config& c = a->config();
  EXPECT_EQ(a->naming(), Rwkv7Naming::kFla);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.head_size, 32);
  EXPECT_EQ(c.intermediate_size, 224);
  EXPECT_EQ(c.decay_lora, 16);
  EXPECT_EQ(c.a_lora, 24);
  EXPECT_EQ(c.v_lora, 8);
  EXPECT_EQ(c.gate_lora, 40);
  EXPECT_DOUBLE_EQ(c.group_norm_epsilon, 32e-5);  // fla: head_dim x norm_eps
  auto b = Rwkv7Weights::Load(authors.parent_path());
  EXPECT_EQ(b->naming(), Rwkv7Naming::kAuthors);
  EXPECT_EQ(b->config().num_heads, 2);
  EXPECT_EQ(b->config().head_size, 64);
  EXPECT_EQ(b->config().gate_lora, 64);
  EXPECT_DOUBLE_EQ(b->config().group_norm_epsilon, 64e-5);  // authors: fixed
  auto r = Rwkv7Weights::Load(cpp);
  EXPECT_EQ(r->config().vocab_size, 256);
  EXPECT_EQ(r->config().num_layers, 12);
  EXPECT_EQ(r->config().v_lora, 32);
}

TEST(Rwkv7LoadTest, FlaNamesOfAuthorsNames) {
  EXPECT_EQ(AuthorsToFlaName("emb.weight"), "model.embeddings.weight");
  EXPECT_EQ(AuthorsToFlaName("blocks.0.ln0.bias"), "model.layers.0.pre_norm.bias");
  EXPECT_EQ(AuthorsToFlaName("blocks.11.att.w1"), "model.layers.11.attn.w_lora.lora.0.weight");
  EXPECT_EQ(AuthorsToFlaName("blocks.2.att.v0"), "model.layers.2.attn.v_lora.lora.2.bias");
  EXPECT_EQ(AuthorsToFlaName("blocks.2.att.g2"), "model.layers.2.attn.g_lora.lora.2.weight");
  EXPECT_EQ(AuthorsToFlaName("blocks.1.att.receptance.weight"),
            "model.layers.1.attn.r_proj.weight");
  EXPECT_EQ(AuthorsToFlaName("blocks.1.att.ln_x.weight"), "model.layers.1.attn.g_norm.weight");
  EXPECT_EQ(AuthorsToFlaName("blocks.1.att.k_k"), "model.layers.1.attn.k_k");
  EXPECT_EQ(AuthorsToFlaName("blocks.1.ln2.weight"), "model.layers.1.ffn_norm.weight");
  EXPECT_EQ(AuthorsToFlaName("blocks.1.ffn.key.weight"), "model.layers.1.ffn.key.weight");
  EXPECT_EQ(AuthorsToFlaName("ln_out.weight"), "model.norm.weight");
  EXPECT_EQ(AuthorsToFlaName("head.weight"), "lm_head.weight");
}

// The authors' layout re-saved in fla names (LoRA factors transposed, biases renamed, vectors
// flattened) computes exactly the same numbers once the GroupNorm eps agrees (N = 64: fla's
// head_dim x norm_eps = 64e-5, the authors' constant): the two namings are read identically.
TEST(Rwkv7LoadTest, BothNamingsOfOneModelAreBitIdentical) {
  RWKV_EMBED_REQUIRE_SHARED(authors, kAuthors);
  const auto tmp = testing::TempDir();
  const auto fla_dir = CopyModel(authors, tmp / "fla", [](TensorToWrite& t) {
    const bool lora = t.name.find(".att.") != std::string::npos && t.shape.size() == 2 &&
                      (t.name.ends_with("1") || t.name.ends_with("2"));
    for (const char* unused : {"blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"}) {
      if (t.name == unused) return false;  // block 0 has no value LoRA in fla
    }
    if (lora) {  // [rows, cols] -> [cols, rows], 2-byte BF16 elements
      const int64_t rows = t.shape[0], cols = t.shape[1];
      std::vector<std::byte> out(t.bytes.size());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          std::memcpy(&out[(c * rows + r) * 2], &t.bytes[(r * cols + c) * 2], 2);
        }
      }
      t.bytes = std::move(out);
      t.shape = {cols, rows};
    }
    t.name = AuthorsToFlaName(t.name);
    return true;
  });
  auto a = LoadModel(authors.parent_path());
  auto f = LoadModel(fla_dir);
  EXPECT_NE(a->Describe().find("authors"), std::string::npos);
  EXPECT_NE(f->Describe().find("fla"), std::string::npos);
  EXPECT_EQ(FinalLayer(*a), FinalLayer(*f));
}

TEST(Rwkv7LoadTest, ArchitectureFromTensorNamesWithoutConfig) {
  RWKV_EMBED_REQUIRE_SHARED(fla, kFla);
  RWKV_EMBED_REQUIRE_SHARED(v6, "models/tiny-rwkv6-f32/model.safetensors");
  const auto tmp = testing::TempDir();
  const auto bare = CopyModel(fla, tmp / "bare", [](TensorToWrite&) { return true; });
  auto with_config = LoadModel(fla.parent_path());
  auto without = LoadModel(bare);
  EXPECT_EQ(without->Architecture(), "rwkv7");
  EXPECT_EQ(FinalLayer(*with_config), FinalLayer(*without));  // norm_eps defaults to 1e-5
  const auto bare6 = CopyModel(v6, tmp / "bare6", [](TensorToWrite&) { return true; });
  EXPECT_EQ(LoadModel(bare6)->Architecture(), "rwkv6");
  EXPECT_EQ(LoadModel(v6.parent_path())->Architecture(), "rwkv6");
}

TEST(Rwkv7LoadTest, BadCheckpointsNameTheFieldOrTensor) {
  RWKV_EMBED_REQUIRE_SHARED(fla, kFla);
  RWKV_EMBED_REQUIRE_SHARED(authors, kAuthors);
  const auto tmp = testing::TempDir();
  auto keep = [](TensorToWrite&) { return true; };
  const auto rwkv5 = CopyModel(fla, tmp / "rwkv5", keep, R"({"model_type": "rwkv5"})");
  ExpectThrowMentioning<FormatError>([&] { LoadModel(rwkv5); }, {"config.json", "rwkv5"});
  const auto liar = CopyModel(fla, tmp / "liar", keep, R"({"model_type": "rwkv6"})");
  ExpectThrowMentioning<FormatError>([&] { LoadModel(liar); }, {"rwkv6", "rwkv7"});
  const auto wrong =
      CopyModel(fla, tmp / "wrong", keep, R"({"model_type": "rwkv7", "hidden_size": 96})");
  ExpectThrowMentioning<ShapeError>([&] { LoadModel(wrong); }, {"hidden_size", "96", "64"});
  const auto no_v = CopyModel(authors, tmp / "no_v",
                              [](TensorToWrite& t) { return t.name != "blocks.1.att.v1"; });
  ExpectThrowMentioning<ShapeError>([&] { LoadModel(no_v); }, {"blocks.1.att.v1"});
  const auto bad_rank = CopyModel(authors, tmp / "bad_rank", [](TensorToWrite& t) {
    if (t.name == "blocks.2.att.a1") {
      t.shape = {128, 16};
      t.bytes.resize(128 * 16 * 2);
    }
    return true;
  });
  ExpectThrowMentioning<ShapeError>([&] { LoadModel(bad_rank); }, {"blocks.2.att.a1", "[128, 16]"});
  const auto neither = CopyModel(authors, tmp / "neither", [](TensorToWrite& t) {
    return t.name.find("k_k") == std::string::npos;
  });
  ExpectThrowMentioning<ShapeError>([&] { LoadModel(neither); }, {"architecture"});
}

// A checkpoint without an LM head still embeds; asking it for logits is a clear error.
TEST(Rwkv7LoadTest, MissingHeadOnlyMattersForLogits) {
  RWKV_EMBED_REQUIRE_SHARED(authors, kAuthors);
  const auto tmp = testing::TempDir();
  const auto headless = CopyModel(authors, tmp / "headless",
                                  [](TensorToWrite& t) { return t.name != "head.weight"; });
  auto m = LoadModel(headless);
  EXPECT_FALSE(FinalLayer(*m).empty());
  TokenBatch batch;
  batch.Add(std::vector<int32_t>{1, 2});
  ForwardOptions opts;
  opts.logits = true;
  ExpectThrowMentioning<UsageError>([&] { m->Forward(batch, opts); }, {"LM head"});
  // Initial states of the wrong size are rejected before any work.
  SequenceState bad = m->ZeroState();
  bad[1].wkv.resize(3);
  ForwardOptions plain;
  ExpectThrowMentioning<UsageError>([&] { m->Forward(batch, plain, {}, std::span(&bad, 1)); },
                                    {"block 1"});
}

// Ablations: skipping a block's branches changes its output as expected, and skipping block 0's
// time mix still leaves v_first for the later blocks.
TEST(Rwkv7LoadTest, OverridesSkipBranches) {
  RWKV_EMBED_REQUIRE_SHARED(authors, kAuthors);
  auto m = LoadModel(authors.parent_path());
  TokenBatch batch;
  batch.Add(std::vector<int32_t>{5, 6, 7});
  ForwardOptions opts;
  opts.layers = {0, 1};
  opts.overrides.resize(m->num_blocks());
  opts.overrides[0].skip_time_mix = true;
  opts.overrides[0].skip_channel_mix = true;
  std::vector<float> l0, l1;
  m->Forward(batch, opts, [&](int l, const Matrix& h) {
    (l == 0 ? l0 : l1).assign(h.Flat().begin(), h.Flat().end());
  });
  EXPECT_EQ(l0, l1);  // block 0 adds nothing
  const auto full = FinalLayer(*m);
  opts.layers = {};
  opts.overrides[0] = {};
  opts.overrides[1].decay_rate_scale = 2.0f;
  EXPECT_NO_THROW(m->Forward(batch, opts));
  opts.overrides.resize(1);
  EXPECT_THROW(m->Forward(batch, opts), UsageError);
}

// The CLI on RWKV-7: every layer's mean from `embed` equals the golden means; --hf-index maps
// RWKV-7's tuple and rejects the indices it lacks; the byte-level tokenizer runs the rwkv.cpp
// model.
TEST(Rwkv7CliTest, EmbedReproducesGoldenMeansAndMapsHfIndices) {
  RWKV_EMBED_REQUIRE_SHARED(golden, "models/tiny-rwkv7-f32/golden.safetensors");
  const auto dir = golden.parent_path();
  std::ifstream gin(dir / "golden.json");
  const auto j = nlohmann::json::parse(gin);
  const auto tmp = testing::TempDir();
  std::vector<int> indices;
  {
    std::ofstream in(tmp / "in.txt");
    for (const auto& s : j["sequences"]) {
      const auto text = s["text"].get<std::string>();
      if (text.empty() || text.find('\n') != std::string::npos) continue;
      in << text << "\n";
      indices.push_back(s["index"].get<int>());
    }
  }
  auto run =
      testing::RunCli({"embed", "--model", dir.string(), "--input", (tmp / "in.txt").string(),
                       "--output", (tmp / "out.npy").string(), "--layers", "all"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const NpyArray got = ReadNpyF32(tmp / "out.npy");
  const int64_t layers = 4, C = 64, n = static_cast<int64_t>(indices.size());
  ASSERT_EQ(got.shape, (std::vector<int64_t>{layers, n, C}));
  const auto store = TensorStore::Open(golden);
  for (int64_t s = 0; s < n; ++s) {
    const auto ref = ToFloat32(store.Get("seq" + std::to_string(indices[s]) + ".mean"));
    for (int64_t l = 0; l < layers; ++l) {
      const auto r = testing::CompareClose(std::span(got.data).subspan((l * n + s) * C, C),
                                           std::span(ref).subspan(l * C, C), 2e-5, 1e-4);
      EXPECT_EQ(r.violations, 0u) << "seq " << indices[s] << " layer " << l << ": " << r.Describe();
    }
  }
  // HF hidden_states[1], [2] of a 2-block RWKV-7 = our layers 1 and 3.
  run = testing::RunCli({"embed", "--model", dir.string(), "--input", (tmp / "in.txt").string(),
                         "--output", (tmp / "hf.npy").string(), "--layers", "1,2", "--hf-index"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const NpyArray hf = ReadNpyF32(tmp / "hf.npy");
  ASSERT_EQ(hf.shape, (std::vector<int64_t>{2, n, C}));
  EXPECT_TRUE(std::equal(hf.data.begin(), hf.data.begin() + n * C, got.data.begin() + n * C));
  EXPECT_TRUE(std::equal(hf.data.begin() + n * C, hf.data.end(), got.data.begin() + 3 * n * C));
  run = testing::RunCli({"embed", "--model", dir.string(), "--input", (tmp / "in.txt").string(),
                         "--output", (tmp / "x.npy").string(), "--layers", "0", "--hf-index"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("before pre_norm"), std::string::npos) << run.err;
}

TEST(Rwkv7CliTest, ByteTokenizerAndInfo) {
  RWKV_EMBED_REQUIRE_SHARED(golden, "models/rwkv.cpp-tiny-rwkv7/golden.safetensors");
  const auto dir = golden.parent_path();
  const auto tmp = testing::TempDir();
  std::ofstream(tmp / "in.txt") << "Hello world!\n";
  auto run = testing::RunCli({"embed", "--model", dir.string(), "--tokenizer", "bytes", "--input",
                              (tmp / "in.txt").string(), "--output", (tmp / "out.npy").string(),
                              "--layers", "all"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const NpyArray got = ReadNpyF32(tmp / "out.npy");
  ASSERT_EQ(got.shape, (std::vector<int64_t>{14, 1, 64}));
  const auto ref = ToFloat32(TensorStore::Open(golden).Get("seq2.mean"));  // "Hello world!"
  const auto r = testing::CompareClose(got.data, ref, 2e-5, 1e-4);
  EXPECT_EQ(r.violations, 0u) << r.Describe();
  // Without --tokenizer bytes there is no vocabulary: the error says what to do.
  run = testing::RunCli({"embed", "--model", dir.string(), "--input", (tmp / "in.txt").string(),
                         "--output", (tmp / "x.npy").string()});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("--tokenizer bytes"), std::string::npos) << run.err;
  run = testing::RunCli({"info", "--model", dir.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("RWKV-7 12 layers"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("13 (after ln_out) (HF hidden_states[12])"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("12 (not in HF hidden_states)"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace rwkv_embed
