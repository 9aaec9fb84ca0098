// Checkpoint loading: both tensor namings, sharded checkpoints, F16, random init, and every
// error path naming the file / tensor / field at fault.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/rwkv6/rwkv6.h"
#include "model/rwkv6/rwkv6_random.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using testing::CopyTensors;
using testing::ExpectThrowMentioning;
using testing::ReadFile;

constexpr const char* kF32Model = "models/tiny-rwkv6-f32/model.safetensors";

std::filesystem::path WriteModel(const std::filesystem::path& dir,
                                 const std::vector<TensorToWrite>& tensors,
                                 const std::filesystem::path& config_from) {
  std::filesystem::create_directories(dir);
  WriteSafetensors(dir / "model.safetensors", tensors);
  if (!config_from.empty()) std::filesystem::copy_file(config_from, dir / "config.json");
  return dir;
}

// Final-layer hidden states of a fixed token sequence.
std::vector<float> FinalLayer(const SequenceModel& m) {
  return testing::FinalLayer(m, std::vector<int32_t>{95, 319, 225, 47, 0, 999, 33});
}

TEST(ModelLoadTest, ReadsSharedModelsConfigAndLoraRanksFromShapes) {
  RWKV_EMBED_REQUIRE_SHARED(f32, kF32Model);
  RWKV_EMBED_REQUIRE_SHARED(bf16, "models/tiny-rwkv6-bf16/model.safetensors");
  auto a = ModelWeights::Load(f32.parent_path());
  EXPECT_EQ(a->config().hidden_size, 64);
  EXPECT_EQ(a->config().num_layers, 2);
  EXPECT_EQ(a->config().intermediate_size, 200);
  EXPECT_EQ(a->config().time_mix_extra_dim, 16);  // non-default LoRA ranks, from shapes
  EXPECT_EQ(a->config().time_decay_extra_dim, 24);
  EXPECT_EQ(a->naming(), "hf");
  auto b = ModelWeights::Load(bf16.parent_path());
  EXPECT_EQ(b->config().intermediate_size, 448);  // null in config.json -> int(3.5*128)//32*32
  EXPECT_EQ(b->config().time_mix_extra_dim, 32);
  EXPECT_EQ(b->config().time_decay_extra_dim, 64);
  EXPECT_EQ(b->config().num_heads(), 2);
  EXPECT_DOUBLE_EQ(b->config().group_norm_epsilon(), 64e-5);
  EXPECT_EQ(b->embeddings().dtype, DType::kBF16);
}

TEST(ModelLoadTest, OriginalRwkvNamesGiveIdenticalResults) {
  RWKV_EMBED_REQUIRE_SHARED(f32, kF32Model);
  const auto store = TensorStore::Open(f32);
  const auto dir = testing::TempDir() / "orig";
  WriteModel(dir,
             CopyTensors(store,
                         [](TensorToWrite& t) {
                           auto rep = [&t](std::string_view a, std::string_view b) {
                             if (auto p = t.name.find(a); p != std::string::npos)
                               t.name.replace(p, a.size(), b);
                           };
                           rep("rwkv.embeddings.", "emb.");
                           rep("rwkv.blocks.", "blocks.");
                           rep("rwkv.ln_out.", "ln_out.");
                           rep(".attention.", ".att.");
                           rep(".feed_forward.", ".ffn.");
                           rep(".pre_ln.", ".ln0.");
                           return true;
                         }),
             "");  // no config.json: everything from shapes
  Rwkv6Model hf(ModelWeights::Load(f32.parent_path()));
  Rwkv6Model orig(ModelWeights::Load(dir));
  EXPECT_EQ(orig.weights().naming(), "original");
  EXPECT_EQ(FinalLayer(orig), FinalLayer(hf));
}

TEST(ModelLoadTest, ShardedCheckpointGivesIdenticalResults) {
  RWKV_EMBED_REQUIRE_SHARED(f32, kF32Model);
  const auto store = TensorStore::Open(f32);
  const auto dir = testing::TempDir();
  std::vector<TensorToWrite> a, b;
  std::string map;
  for (auto& t : CopyTensors(store, [](TensorToWrite&) { return true; })) {
    const bool first = t.name < "rwkv.blocks.1";
    map += std::string(map.empty() ? "" : ",") + "\"" + t.name + "\":\"" +
           (first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors") + "\"";
    (first ? a : b).push_back(std::move(t));
  }
  WriteSafetensors(dir / "model-00001-of-00002.safetensors", a);
  WriteSafetensors(dir / "model-00002-of-00002.safetensors", b);
  std::ofstream(dir / "model.safetensors.index.json")
      << "{\"metadata\":{},\"weight_map\":{" << map << "}}";
  std::filesystem::copy_file(f32.parent_path() / "config.json", dir / "config.json");
  Rwkv6Model hf(ModelWeights::Load(f32.parent_path()));
  Rwkv6Model sharded(ModelWeights::Load(dir));
  EXPECT_EQ(FinalLayer(sharded), FinalLayer(hf));
}

TEST(ModelLoadTest, RandomInitIsDeterministicAndLoadsInEveryDtype) {
  const auto dir = testing::TempDir();
  ModelConfig c = FindModelPreset("tiny").config;
  c.vocab_size = 1000;  // keep the test small
  RandomModelOptions o;
  WriteRandomModel(c, o, dir / "a");
  WriteRandomModel(c, o, dir / "b");
  o.seed = 1;
  WriteRandomModel(c, o, dir / "c");
  EXPECT_EQ(ReadFile(dir / "a/model.safetensors"), ReadFile(dir / "b/model.safetensors"));
  EXPECT_NE(ReadFile(dir / "a/model.safetensors"), ReadFile(dir / "c/model.safetensors"));
  Rwkv6Model bf16(ModelWeights::Load(dir / "a"));
  EXPECT_TRUE(bf16.config().random_weights);
  EXPECT_NE(bf16.weights().Describe().find("RANDOM"), std::string::npos);

  o.dtype = DType::kF16;
  o.shards = 3;
  o.original_names = true;
  WriteRandomModel(c, o, dir / "f16");
  EXPECT_TRUE(std::filesystem::exists(dir / "f16/model.safetensors.index.json"));
  Rwkv6Model f16(ModelWeights::Load(dir / "f16"));
  EXPECT_EQ(f16.weights().naming(), "original");
  const auto out = FinalLayer(f16);
  ASSERT_FALSE(out.empty());
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
  // A random model is not degenerate: its final states differ between tokens.
  EXPECT_NE(std::vector<float>(out.begin(), out.begin() + 128),
            std::vector<float>(out.begin() + 128, out.begin() + 256));
}

TEST(ModelLoadTest, RandomInitNeverLeavesStaleOrHalfWrittenWeights) {
  // Audit finding: `init-model --seed 1` then `--seed 2 --shards 2` into the same folder kept the
  // old model.safetensors, which the loader preferred: embeddings came from the old model.
  namespace fs = std::filesystem;
  const auto root = testing::TempDir();
  const auto dir = root / "m";
  ModelConfig c = FindModelPreset("tiny").config;
  c.vocab_size = 1000;  // FinalLayer uses ids up to 999
  RandomModelOptions o;
  o.seed = 1;
  WriteRandomModel(c, o, dir);
  const std::string seed1 = ReadFile(dir / "model.safetensors");
  std::ofstream(dir / "notes.txt") << "mine";

  o.seed = 2;
  o.shards = 2;
  ExpectThrowMentioning<UsageError>([&] { WriteRandomModel(c, o, dir); },
                                    {dir.string(), "not empty", "model.safetensors", "--force"});
  EXPECT_EQ(ReadFile(dir / "model.safetensors"), seed1);  // untouched
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));

  // A failure while writing (here: the vocabulary to copy is a folder) leaves the folder as it
  // was: the old model complete, no partial files.
  o.force = true;
  o.vocab = root;
  EXPECT_THROW(WriteRandomModel(c, o, dir), IoError);
  EXPECT_EQ(ReadFile(dir / "model.safetensors"), seed1);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / ".init-model.partial"));
  const auto fresh = root / "fresh";
  EXPECT_THROW(WriteRandomModel(c, o, fresh), IoError);
  EXPECT_FALSE(fs::exists(fresh));  // a folder it created is removed again
  o.vocab.clear();

  // With force the new sharded model replaces the old single file; other files are kept.
  WriteRandomModel(c, o, dir);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_EQ(ReadFile(dir / "notes.txt"), "mine");
  EXPECT_FALSE(fs::exists(dir / ".init-model.partial"));
  const auto expected = root / "expected";
  WriteRandomModel(c, o, expected);
  Rwkv6Model replaced(ModelWeights::Load(dir));
  Rwkv6Model seed2(ModelWeights::Load(expected));
  EXPECT_EQ(FinalLayer(replaced), FinalLayer(seed2));

  // And back to a single file: the shards and index go.
  o.shards = 1;
  WriteRandomModel(c, o, dir);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00002.safetensors"));
  EXPECT_NO_THROW(ModelWeights::Load(dir));

  // A folder where a file must go stops the commit before anything is replaced.
  fs::remove(dir / "config.json");
  fs::create_directory(dir / "config.json");
  const std::string before = ReadFile(dir / "model.safetensors");
  o.seed = 3;
  ExpectThrowMentioning<IoError>([&] { WriteRandomModel(c, o, dir); }, {"config.json", "folder"});
  EXPECT_EQ(ReadFile(dir / "model.safetensors"), before);
  EXPECT_FALSE(fs::exists(dir / ".init-model.partial"));
}

TEST(ModelLoadTest, RecurrentStateIsBoundedByTheWeights) {
  // time_faaaa [H, S] alone sizes the WKV state (A x S floats per block and sequence): a head
  // size beyond the hidden size is refused at load instead of allocated at the first forward.
  ModelConfig c = FindModelPreset("tiny").config;
  c.vocab_size = 1000;
  c.hidden_size = 8;
  c.attention_hidden_size = 64;
  c.head_size = 64;
  c.intermediate_size = 32;
  c.num_layers = 1;
  const auto dir = testing::TempDir() / "wide-heads";
  WriteRandomModel(c, {}, dir);
  std::filesystem::remove(dir / "config.json");  // shapes alone
  ExpectThrowMentioning<ShapeError>([&] { ModelWeights::Load(dir); },
                                    {"time_faaaa", "[1, 64]", "head size 64", "hidden size 8"});
}

TEST(ModelLoadTest, RandomInitSizesAreCheckedBeforeAllocating) {
  // Audit findings: the shape product overflowed (UBSan) for a huge vocabulary, and absurd sizes
  // grew for minutes before std::bad_alloc.
  ModelConfig c = FindModelPreset("tiny").config;
  c.vocab_size = 1000;
  c.num_layers = 5;  // sized from 1- and 2-block models: check the extrapolation
  const uint64_t tiny = RandomModelBytes(c, DType::kBF16).value();
  const auto root = testing::TempDir();
  const auto written = root / "written";
  WriteRandomModel(c, {}, written);
  EXPECT_EQ(tiny, TensorStore::Open(written).TotalBytes());
  EXPECT_EQ(RandomModelBytes(c, DType::kF32).value(), 2 * tiny);
  ModelConfig overflow = c;
  overflow.vocab_size = int64_t{1} << 62;
  EXPECT_EQ(RandomModelBytes(overflow, DType::kF32), std::nullopt);
  overflow = c;
  overflow.num_layers = int64_t{1} << 60;
  EXPECT_EQ(RandomModelBytes(overflow, DType::kBF16), std::nullopt);

  const auto dir = root / "big";
  RandomModelOptions o;
  ModelConfig big = c;
  big.vocab_size = 100'000'000'000;
  ExpectThrowMentioning<UsageError>([&] { WriteRandomModel(big, o, dir); },
                                    {"vocab_size 100000000000", "2147483647"});
  big = FindModelPreset("finch-14b").config;
  big.num_layers = 60000;  // within the config limit, 24 TiB of weights
  ExpectThrowMentioning<UsageError>([&] { WriteRandomModel(big, o, dir); },
                                    {"60000 layers", "TiB", "memory available"});
  EXPECT_FALSE(std::filesystem::exists(dir));
}

class BrokenModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::SharedFile(kF32Model);
    if (path_.empty()) GTEST_SKIP() << "shared file absent: " << kF32Model;
    store_ = std::make_unique<TensorStore>(TensorStore::Open(path_));
  }
  std::filesystem::path Write(const std::function<bool(TensorToWrite&)>& edit,
                              bool with_config = true) {
    return WriteModel(testing::TempDir() / "m", CopyTensors(*store_, edit),
                      with_config ? path_.parent_path() / "config.json" : "");
  }
  std::filesystem::path path_;
  std::unique_ptr<TensorStore> store_;
};

TEST_F(BrokenModelTest, MissingTensorIsNamedWithItsFile) {
  const auto dir =
      Write([](TensorToWrite& t) { return t.name != "rwkv.blocks.1.feed_forward.key.weight"; });
  ExpectThrowMentioning<ShapeError>([&] { ModelWeights::Load(dir); },
                                    {"rwkv.blocks.1.feed_forward.key.weight", "model.safetensors"});
}

TEST_F(BrokenModelTest, MisshapenTensorIsNamedWithBothShapes) {
  const auto dir = Write([](TensorToWrite& t) {
    if (t.name == "rwkv.blocks.1.attention.output.weight") {
      t.shape = {32, 128};  // same bytes, wrong shape
    }
    return true;
  });
  ExpectThrowMentioning<ShapeError>(
      [&] { ModelWeights::Load(dir); },
      {"rwkv.blocks.1.attention.output.weight", "[32, 128]", "[64, 64]"});
}

TEST_F(BrokenModelTest, ConfigDisagreeingWithShapesIsNamed) {
  const auto dir = Write([](TensorToWrite&) { return true; });
  std::ofstream(dir / "config.json") << R"({"model_type": "rwkv6", "vocab_size": 65536,
      "hidden_size": 64, "num_hidden_layers": 3, "intermediate_size": 200})";
  ExpectThrowMentioning<ShapeError>([&] { ModelWeights::Load(dir); },
                                    {"num_hidden_layers", "3", "2"});
  std::ofstream(dir / "config.json") << "{not json";
  ExpectThrowMentioning<FormatError>([&] { ModelWeights::Load(dir); }, {"config.json"});
  std::ofstream(dir / "config.json") << R"({"model_type": "rwkv5", "vocab_size": 1})";
  ExpectThrowMentioning<FormatError>([&] { ModelWeights::Load(dir); }, {"rwkv5"});
}

TEST(ConfigTest, FieldsAreRangeChecked) {
  // Audit finding: head_size_divisor 3037000500 overflowed int64 in group_norm_epsilon() (UBSan).
  const auto path = testing::TempDir() / "config.json";
  const std::string base = R"("model_type": "rwkv6", "vocab_size": 1000, "hidden_size": 128,
      "num_hidden_layers": 2)";
  const auto expect_bad = [&](const std::string& extra, const std::string& field) {
    std::ofstream(path) << "{" << base << (extra.empty() ? "" : ", " + extra) << "}";
    ExpectThrowMentioning<FormatError>([&] { ModelConfig::FromJsonFile(path); },
                                       {path.string(), "'" + field + "'"});
  };
  expect_bad(R"("head_size_divisor": 3037000500)", "head_size_divisor");
  expect_bad(R"("head_size_divisor": 0)", "head_size_divisor");
  expect_bad(R"("head_size_divisor": 18446744073709551615)", "head_size_divisor");
  expect_bad(R"("intermediate_size": 9223372036854775807)", "intermediate_size");
  expect_bad(R"("head_size": 1.5)", "head_size");
  expect_bad(R"("layer_norm_epsilon": -1e-5)", "layer_norm_epsilon");
  expect_bad(R"("layer_norm_epsilon": 2)", "layer_norm_epsilon");
  expect_bad(R"("rescale_every": "6")", "rescale_every");
  expect_bad(R"("rescale_every": -1)", "rescale_every");
  expect_bad(R"("rwkv_embed_random_weights": "yes")", "rwkv_embed_random_weights");
  std::ofstream(path) << R"({"model_type": "rwkv6", "vocab_size": 4294967296, "hidden_size": 8,
      "num_hidden_layers": 1})";
  ExpectThrowMentioning<FormatError>([&] { ModelConfig::FromJsonFile(path); },
                                     {"'vocab_size'", "2147483647"});
  std::ofstream(path) << R"({"model_type": "rwkv6", "vocab_size": 10, "hidden_size": 8,
      "num_hidden_layers": 65537})";
  ExpectThrowMentioning<FormatError>([&] { ModelConfig::FromJsonFile(path); },
                                     {"'num_hidden_layers'"});

  // In range: accepted, and the GroupNorm eps is computed without integer overflow.
  std::ofstream(path) << "{" << base << R"(, "head_size_divisor": 1024, "rescale_every": 0,
      "rwkv_embed_random_weights": true})";
  const ModelConfig c = ModelConfig::FromJsonFile(path);
  EXPECT_EQ(c.head_size_divisor, 1024);
  EXPECT_EQ(c.rescale_every, 0);
  EXPECT_TRUE(c.random_weights);
  EXPECT_DOUBLE_EQ(c.group_norm_epsilon(), 1e-5 * 1024 * 1024);
  ModelConfig huge;
  huge.head_size_divisor = 3037000500;  // squared overflows int64: the debug preset's UBSan trips
  EXPECT_DOUBLE_EQ(huge.group_norm_epsilon(), 1e-5 * 3037000500.0 * 3037000500.0);

  // A config.json that is not a small regular file is refused before it is read.
  std::filesystem::resize_file(path, 1ull << 32);  // sparse
  ExpectThrowMentioning<FormatError>([&] { ModelConfig::FromJsonFile(path); },
                                     {path.string(), "too large"});
}

TEST_F(BrokenModelTest, NonFiniteWeightsAreFoundOnRequest) {
  const auto dir = Write([](TensorToWrite& t) {
    if (t.name == "rwkv.blocks.0.attention.key.weight") {
      const float nan = std::nanf("");
      std::memcpy(t.bytes.data() + 4 * 17, &nan, 4);
    }
    return true;
  });
  EXPECT_NO_THROW(ModelWeights::Load(dir));  // not scanned by default (it reads every page)
  LoadOptions o;
  o.check_finite = true;
  ExpectThrowMentioning<NumericError>([&] { ModelWeights::Load(dir, o); },
                                      {"rwkv.blocks.0.attention.key.weight", "element 17"});
}

TEST_F(BrokenModelTest, UnsupportedDtypeAndMissingFilesAreReported) {
  const auto dir = Write([](TensorToWrite& t) {
    if (t.name == "rwkv.ln_out.weight") t.dtype = DType::kI32;
    return true;
  });
  ExpectThrowMentioning<ShapeError>([&] { ModelWeights::Load(dir); },
                                    {"rwkv.ln_out.weight", "I32"});
  const auto empty = testing::TempDir() / "empty";
  std::filesystem::create_directories(empty);
  EXPECT_THROW(ModelWeights::Load(empty), IoError);
  const auto no_emb = Write([](TensorToWrite& t) { return t.name != "rwkv.embeddings.weight"; });
  ExpectThrowMentioning<ShapeError>([&] { ModelWeights::Load(no_emb); },
                                    {"rwkv.embeddings.weight", "emb.weight"});
}

TEST(ForwardErrorsTest, BadTokensLayersAndOverridesAreUsageErrors) {
  RWKV_EMBED_REQUIRE_SHARED(f32, kF32Model);
  Rwkv6Model m(ModelWeights::Load(f32.parent_path()));
  TokenBatch batch;
  batch.Add(std::vector<int32_t>{65536});
  EXPECT_THROW(m.Forward(batch, {}), UsageError);
  TokenBatch ok;
  ok.Add(std::vector<int32_t>{5});
  ForwardOptions o;
  o.layers = {4};  // L + 1 = 3 is the last
  EXPECT_THROW(m.Forward(ok, o, [](int, const Matrix&) {}), UsageError);
  ForwardOptions ov;
  ov.overrides.resize(1);
  EXPECT_THROW(m.Forward(ok, ov), UsageError);
  TokenBatch empty;
  empty.Add(std::vector<int32_t>{});
  EXPECT_THROW(m.Forward(empty, {}), UsageError);
}

// Ablations change exactly what they claim: skipping both branches of every block leaves the
// residual stream equal to the embeddings after pre_ln.
TEST(ForwardOverrideTest, SkippingEveryBranchLeavesTheEmbeddings) {
  RWKV_EMBED_REQUIRE_SHARED(f32, kF32Model);
  Rwkv6Model m(ModelWeights::Load(f32.parent_path()));
  TokenBatch batch;
  batch.Add(std::vector<int32_t>{10, 20, 30});
  ForwardOptions o;
  o.layers = {0, 2};
  o.overrides.assign(2, BlockOverride{true, true, 1.0f});
  std::vector<Matrix> got(3);
  m.Forward(batch, o, [&](int l, const Matrix& h) { got[l] = h; });
  EXPECT_EQ(std::vector<float>(got[0].Flat().begin(), got[0].Flat().end()),
            std::vector<float>(got[2].Flat().begin(), got[2].Flat().end()));
  // Rescaling the decay changes the output of the block, skipping only the channel mix too.
  ForwardOptions base;
  base.layers = {1};
  std::vector<float> ref, scaled;
  m.Forward(batch, base,
            [&](int, const Matrix& h) { ref.assign(h.Flat().begin(), h.Flat().end()); });
  base.overrides.assign(2, BlockOverride{false, false, 4.0f});
  m.Forward(batch, base,
            [&](int, const Matrix& h) { scaled.assign(h.Flat().begin(), h.Flat().end()); });
  EXPECT_NE(ref, scaled);
}

}  // namespace
}  // namespace rwkv_embed
