// init-model for RWKV-7: the presets' released shapes, round trips through LoadModel in both
// namings and dtypes (shapes, ranks, naming and eps detected), determinism per seed, the same
// model in both namings, activations that stay finite and informative, and sizes checked before
// anything is allocated.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/load_model.h"
#include "model/rwkv7/rwkv7.h"
#include "model/rwkv7/rwkv7_random.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using testing::ReadFile;

// goose-tiny with a small vocabulary (the embedding and head dominate the file otherwise).
Rwkv7Config TinyConfig() {
  Rwkv7Config c = FindRwkv7Preset("goose-tiny")->config;
  c.vocab_size = 512;
  return c;
}

// Every layer of `model` for two different token sequences, as [layer][sequence] mean vectors.
std::vector<std::vector<std::vector<float>>> MeanPerLayer(const SequenceModel& model) {
  TokenBatch batch;
  const std::vector<int32_t> a = {1, 17, 300, 42, 5, 99, 7, 256, 3};
  const std::vector<int32_t> b = {400, 2, 2, 88, 150, 61};
  batch.Add(a);
  batch.Add(b);
  ForwardOptions o;
  for (int l = 0; l < model.num_layer_taps(); ++l) o.layers.push_back(l);
  std::vector<std::vector<std::vector<float>>> out(model.num_layer_taps());
  model.Forward(batch, o, [&](int layer, const Matrix& h) {
    for (int64_t s = 0; s < batch.num_sequences(); ++s) {
      std::vector<float> mean(h.cols(), 0.0f);
      for (int64_t t = batch.offsets[s]; t < batch.offsets[s + 1]; ++t) {
        for (int64_t c = 0; c < h.cols(); ++c) mean[c] += h.Row(t)[c] / batch.length(s);
      }
      out[layer].push_back(std::move(mean));
    }
  });
  return out;
}

TEST(RandomInitRwkv7, PresetsHaveTheReleasedShapesAndRanks) {
  struct Want {
    const char* name;
    int64_t C, L, F, Dw, Da, Dv, Dg;
  };
  for (const Want& w : {Want{"goose-0.1b", 768, 12, 3072, 64, 64, 32, 128},
                        Want{"goose-0.4b", 1024, 24, 4096, 64, 64, 32, 128},
                        Want{"goose-1.5b", 2048, 24, 8192, 96, 96, 64, 256},
                        Want{"goose-2.9b", 2560, 32, 10240, 96, 96, 64, 320}}) {
    const Rwkv7Preset* p = FindRwkv7Preset(w.name);
    ASSERT_NE(p, nullptr) << w.name;
    const Rwkv7Config& c = p->config;
    EXPECT_EQ(c.vocab_size, 65536);
    EXPECT_EQ(c.hidden_size, w.C);
    EXPECT_EQ(c.num_layers, w.L);
    EXPECT_EQ(c.head_size, 64);
    EXPECT_EQ(c.num_heads * 64, w.C);
    EXPECT_EQ(c.intermediate_size, w.F);
    EXPECT_EQ(c.decay_lora, w.Dw);
    EXPECT_EQ(c.a_lora, w.Da);
    EXPECT_EQ(c.v_lora, w.Dv);
    EXPECT_EQ(c.gate_lora, w.Dg);
  }
  EXPECT_EQ(FindRwkv7Preset("finch-1b6"), nullptr);
}

TEST(RandomInitRwkv7, SizesAreCountedWithoutAllocating) {
  // 1.5B in BF16: every tensor of the authors' layout (block 0 without v-LoRA), counted by hand.
  const Rwkv7Config c = FindRwkv7Preset("goose-1.5b")->config;
  const int64_t V = 65536, C = 2048, L = 24, F = 8192;
  const int64_t per_block = 2 * 2 * C /*ln1, ln2*/ + 6 * C /*x_*/ + C + 2 * C * 96 /*w*/ + C +
                            2 * C * 96 /*a*/ + 2 * C * 256 /*g*/ + 2 * C /*k_k, k_a*/ + C /*r_k*/ +
                            4 * C * C + 2 * C /*ln_x*/ + C /*ffn.x_k*/ + 2 * F * C;
  const int64_t v_lora = C + 2 * C * 64;
  const int64_t total = 2 * V * C + 2 * C /*ln0*/ + L * per_block + (L - 1) * v_lora + 2 * C;
  EXPECT_EQ(Rwkv7RandomModelBytes(c, DType::kBF16), static_cast<uint64_t>(2 * total));
  EXPECT_EQ(Rwkv7RandomModelBytes(c, DType::kF32), static_cast<uint64_t>(4 * total));
  // A shape whose size overflows 64 bits is reported, and refused before any allocation.
  Rwkv7Config huge = c;
  huge.vocab_size = int64_t{1} << 62;
  EXPECT_EQ(Rwkv7RandomModelBytes(huge, DType::kF32), std::nullopt);
  const auto dir = testing::TempDir() / "huge";
  EXPECT_THROW(WriteRandomRwkv7Model(huge, {}, dir), UsageError);
  // Larger than any machine's memory (8 EiB of embeddings): refused up front, nothing written.
  huge.vocab_size = int64_t{1} << 50;
  EXPECT_THROW(WriteRandomRwkv7Model(huge, {}, dir), UsageError);
  EXPECT_FALSE(std::filesystem::exists(dir));
  Rwkv7Config bad = c;
  bad.num_heads = 3;  // 3 x 64 != 2048
  EXPECT_THROW(WriteRandomRwkv7Model(bad, {}, dir), UsageError);
}

TEST(RandomInitRwkv7, RoundTripsInBothNamingsAndDtypes) {
  const Rwkv7Config want = TinyConfig();
  const auto root = testing::TempDir();
  for (const Rwkv7Naming naming : {Rwkv7Naming::kAuthors, Rwkv7Naming::kFla}) {
    for (const DType dtype : {DType::kF32, DType::kBF16}) {
      Rwkv7RandomOptions o;
      o.naming = naming;
      o.dtype = dtype;
      o.seed = 3;
      const auto dir = root / (std::string(naming == Rwkv7Naming::kFla ? "fla" : "authors") +
                               (dtype == DType::kF32 ? "-f32" : "-bf16"));
      WriteRandomRwkv7Model(want, o, dir);
      EXPECT_EQ(DetectArchitecture(dir), Architecture::kRwkv7);
      const auto model = LoadModel(dir);
      const auto* r7 = dynamic_cast<const Rwkv7Model*>(model.get());
      ASSERT_NE(r7, nullptr);
      const Rwkv7Config& c = r7->config();
      EXPECT_EQ(r7->weights().naming(), naming);
      EXPECT_EQ(c.vocab_size, want.vocab_size);
      EXPECT_EQ(c.hidden_size, want.hidden_size);
      EXPECT_EQ(c.num_layers, want.num_layers);
      EXPECT_EQ(c.num_heads, want.num_heads);
      EXPECT_EQ(c.head_size, want.head_size);
      EXPECT_EQ(c.intermediate_size, want.intermediate_size);
      EXPECT_EQ(c.decay_lora, want.decay_lora);
      EXPECT_EQ(c.a_lora, want.a_lora);
      EXPECT_EQ(c.v_lora, want.v_lora);
      EXPECT_EQ(c.gate_lora, want.gate_lora);
      EXPECT_DOUBLE_EQ(c.group_norm_epsilon, 64e-5);  // both: head size 64
      EXPECT_TRUE(model->random_weights());
      EXPECT_EQ(model->FindNonFiniteWeight(), std::nullopt);
      const auto means = MeanPerLayer(*model);
      for (size_t l = 0; l < means.size(); ++l) {
        for (const auto& v : means[l]) {
          for (float x : v) ASSERT_TRUE(std::isfinite(x)) << "layer " << l;
        }
      }
      const auto config = nlohmann::json::parse(ReadFile(dir / "config.json"));
      EXPECT_EQ(config["model_type"], "rwkv7");
      EXPECT_EQ(config["rwkv_embed_random_weights"], true);
    }
  }
  // One seed, one model: the namings differ only in names and LoRA orientation, and with head
  // size 64 both use GroupNorm eps 64e-5, so every layer is bit-identical.
  const auto a = MeanPerLayer(*LoadModel(root / "authors-f32"));
  const auto f = MeanPerLayer(*LoadModel(root / "fla-f32"));
  EXPECT_EQ(a, f);
}

TEST(RandomInitRwkv7, DeterministicPerSeed) {
  const auto root = testing::TempDir();
  Rwkv7RandomOptions o;
  o.seed = 7;
  WriteRandomRwkv7Model(TinyConfig(), o, root / "a");
  WriteRandomRwkv7Model(TinyConfig(), o, root / "b");
  o.seed = 8;
  WriteRandomRwkv7Model(TinyConfig(), o, root / "c");
  const std::string a = ReadFile(root / "a/model.safetensors");
  EXPECT_EQ(a, ReadFile(root / "b/model.safetensors"));
  EXPECT_NE(a, ReadFile(root / "c/model.safetensors"));
}

// The random control is only a control if its layers carry information: activations of
// ordinary size, different texts giving different vectors, and later blocks changing them.
TEST(RandomInitRwkv7, ActivationsStayInformativeThroughEveryBlock) {
  Rwkv7Config c = TinyConfig();
  c.num_layers = 12;  // as deep as the 0.1B model
  const auto dir = testing::TempDir() / "deep";
  WriteRandomRwkv7Model(c, {}, dir);
  const auto model = LoadModel(dir);
  const auto means = MeanPerLayer(*model);
  auto norm = [](const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += static_cast<double>(x) * x;
    return std::sqrt(s);
  };
  auto cosine = [&](const std::vector<float>& x, const std::vector<float>& y) {
    double d = 0;
    for (size_t i = 0; i < x.size(); ++i) d += static_cast<double>(x[i]) * y[i];
    return d / (norm(x) * norm(y));
  };
  const double sqrt_c = std::sqrt(static_cast<double>(c.hidden_size));
  for (size_t l = 0; l < means.size(); ++l) {
    for (const auto& v : means[l]) {
      const double rms = norm(v) / sqrt_c;
      EXPECT_GT(rms, 0.05) << "layer " << l;  // not vanishing
      EXPECT_LT(rms, 50.0) << "layer " << l;  // not exploding
    }
    EXPECT_LT(cosine(means[l][0], means[l][1]), 0.9) << "layer " << l;  // texts distinguishable
  }
  // The blocks do something: the last block's output is not the embedding layer's.
  EXPECT_LT(cosine(means[1][0], means[c.num_layers][0]), 0.99);
}

}  // namespace
}  // namespace rwkv_embed
