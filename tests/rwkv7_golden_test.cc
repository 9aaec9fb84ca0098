// The RWKV-7 forward pass against float64 reference outputs (../shared/models/*rwkv7*/
// golden.safetensors): every layer tap of every sequence, the last-position logits and the
// recurrent state after the last token, for both tensor namings (fla/HF F32, authors' BF16, the
// trained rwkv.cpp model); rwkv.cpp's own expected logits; packing, chunking and BF16 matmuls.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/load_model.h"
#include "model/rwkv7/rwkv7.h"
#include "model_test_util.h"
#include "test_util.h"
#include "tokenizer/byte_tokenizer.h"

namespace rwkv_embed {
namespace {

using testing::CompareClose;
using testing::Golden;

// Tolerance |a - b| <= atol + rtol |ref|. The project's requirement is 1e-4 + 1e-3 |ref|; the
// RWKV-6 goldens (model_golden_test.cc) are held to 2e-5 + 1e-4 |ref|, ten times tighter, and so
// are the fla F32 model (max abs error 5.8e-6) and the trained rwkv.cpp model (7e-7). The random
// BF16 model in the authors' layout reaches 5e-5 to 8e-5 depending on the WKV kernel's summation
// order (a handful of its 1.4M elements exceed the tighter bound):
// its random GroupNorm inputs have per-head variance down to 5e-4, near the 64e-5 eps, so ln_x
// amplifies the FP32 rounding of the r/k/v projections ~40x (with float64 GEMM accumulation its
// max error drops 5x; with a float64 WKV scan it does not change). It is held to the requirement.
struct Tolerance {
  double atol, rtol;
};
Tolerance ToleranceFor(const std::string& folder) {
  if (folder == "tiny-rwkv7-bf16") return {1e-4, 1e-3};
  return {2e-5, 1e-4};
}
constexpr double kAtol = 2e-5;  // rwkv.cpp's expected logits
constexpr double kRtol = 1e-4;

Golden LoadRwkv7Golden(const std::filesystem::path& dir) {
  return testing::LoadGolden(std::make_unique<Rwkv7Model>(Rwkv7Weights::Load(dir)), dir);
}

size_t LongestSequence(const Golden& g) {
  size_t best = 0;
  for (size_t s = 0; s < g.ids.size(); ++s) {
    if (g.ids[s].size() > g.ids[best].size()) best = s;
  }
  return best;
}

// One state piece of every block, flattened in block order.
std::vector<float> Flatten(const SequenceState& state, std::vector<float> BlockState::*piece) {
  std::vector<float> out;
  for (const BlockState& b : state) out.insert(out.end(), (b.*piece).begin(), (b.*piece).end());
  return out;
}

class Rwkv7GoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(Rwkv7GoldenTest, EveryLayerLogitsAndStatesMatchFloat64Reference) {
  RWKV_EMBED_REQUIRE_SHARED(dir, std::string("models/") + GetParam() + "/golden.safetensors");
  Golden g = LoadRwkv7Golden(dir.parent_path());
  const SequenceModel& m = *g.model;
  const int64_t C = m.hidden_size();
  const auto [atol, rtol] = ToleranceFor(GetParam());
  double worst_abs = 0, worst_rel = 0, worst_logit_abs = 0, worst_state_abs = 0;
  for (size_t s = 0; s < g.ids.size(); ++s) {
    const std::string seq = "seq" + std::to_string(s);
    TokenBatch batch;
    batch.Add(g.ids[s]);
    const int64_t T = batch.num_tokens();
    const auto ref = ToFloat32(g.golden.Get(seq + ".layers"));
    ASSERT_EQ(static_cast<int64_t>(ref.size()), m.num_layer_taps() * T * C);
    ForwardOptions opts;
    opts.layers = testing::AllLayers(m);
    opts.logits = true;
    opts.return_states = true;
    int taps = 0;
    auto result = m.Forward(batch, opts, [&](int layer, const Matrix& h) {
      ++taps;
      auto r = CompareClose(h.Flat(), std::span(ref).subspan(layer * T * C, T * C), atol, rtol);
      EXPECT_EQ(r.violations, 0u) << seq << " layer " << layer << ": " << r.Describe();
      worst_abs = std::max(worst_abs, r.max_abs_error);
      worst_rel = std::max(worst_rel, r.max_rel_error);
    });
    EXPECT_EQ(taps, m.num_layer_taps());
    const auto ref_logits = ToFloat32(g.golden.Get(seq + ".last_logits"));
    auto r = CompareClose(result.logits.Flat(), ref_logits, atol, rtol);
    EXPECT_EQ(r.violations, 0u) << seq << " logits: " << r.Describe();
    worst_logit_abs = std::max(worst_logit_abs, r.max_abs_error);

    const std::pair<const char*, std::vector<float> BlockState::*> pieces[] = {
        {".state.att_x", &BlockState::time_shift},
        {".state.wkv", &BlockState::wkv},
        {".state.ffn_x", &BlockState::channel_shift}};
    for (const auto& [name, piece] : pieces) {
      const auto ref_state = ToFloat32(g.golden.Get(seq + name));
      const auto got = Flatten(result.states[0], piece);
      ASSERT_EQ(got.size(), ref_state.size()) << seq << name;
      auto rs = CompareClose(got, ref_state, atol, rtol);
      EXPECT_EQ(rs.violations, 0u) << seq << name << ": " << rs.Describe();
      worst_state_abs = std::max(worst_state_abs, rs.max_abs_error);
    }
  }
  std::cout << GetParam() << ": hidden states max_abs_error=" << worst_abs
            << " max_rel_error=" << worst_rel << "; logits max_abs_error=" << worst_logit_abs
            << "; states max_abs_error=" << worst_state_abs << "\n";
  RecordProperty("hidden_max_abs_error", std::to_string(worst_abs));
  RecordProperty("logits_max_abs_error", std::to_string(worst_logit_abs));
  RecordProperty("state_max_abs_error", std::to_string(worst_state_abs));
}

// BF16 matmuls: the RWKV-6 goldens' stated tolerance (hidden states within 0.05 + 0.02 |ref|, every
// layer's mean-pooled vector at cosine >= 0.999 to the reference mean). Exception, measured: in
// the random tiny-rwkv7-bf16 the per-head input of ln_x has a variance near its eps (64e-5), so
// GroupNorm multiplies the BF16 rounding of the activations by up to ~28; its elements reach 0.22
// off (at 0.999951 cosine). There the per-layer relative error ||h - ref|| / ||ref|| <= 0.02 is
// asserted instead of the elementwise bound (the F32 path holds 1e-4 + 1e-3 |ref| on it, above).
TEST_P(Rwkv7GoldenTest, Bf16MatmulsStayWithinTheirStatedTolerance) {
  RWKV_EMBED_REQUIRE_SHARED(dir, std::string("models/") + GetParam() + "/golden.safetensors");
  Golden g = LoadRwkv7Golden(dir.parent_path());
  const SequenceModel& m = *g.model;
  const int64_t C = m.hidden_size();
  double worst_abs = 0, worst_cos = 1, worst_rel_norm = 0;
  for (size_t s = 0; s < g.ids.size(); ++s) {
    TokenBatch batch;
    batch.Add(g.ids[s]);
    const int64_t T = batch.num_tokens();
    const auto ref = ToFloat32(g.golden.Get("seq" + std::to_string(s) + ".layers"));
    const auto ref_mean = ToFloat32(g.golden.Get("seq" + std::to_string(s) + ".mean"));
    ForwardOptions opts;
    opts.layers = testing::AllLayers(m);
    opts.precision = kernels::MatMulPrecision::kBF16;
    m.Forward(batch, opts, [&](int layer, const Matrix& h) {
      const auto ref_layer = std::span(ref).subspan(layer * T * C, T * C);
      auto r = CompareClose(h.Flat(), ref_layer, 0.05, 0.02);
      double diff2 = 0, ref2 = 0;
      for (size_t i = 0; i < ref_layer.size(); ++i) {
        diff2 += (h.Flat()[i] - double{ref_layer[i]}) * (h.Flat()[i] - double{ref_layer[i]});
        ref2 += double{ref_layer[i]} * ref_layer[i];
      }
      const double rel = std::sqrt(diff2 / std::max(ref2, 1e-300));
      worst_rel_norm = std::max(worst_rel_norm, rel);
      if (std::string(GetParam()) == "tiny-rwkv7-bf16") {
        EXPECT_LE(rel, 0.02) << "seq " << s << " layer " << layer << ": " << r.Describe();
      } else {
        EXPECT_EQ(r.violations, 0u) << "seq " << s << " layer " << layer << ": " << r.Describe();
      }
      worst_abs = std::max(worst_abs, r.max_abs_error);
      const double cos = testing::MeanPooledCosine(h, std::span(ref_mean).subspan(layer * C, C));
      EXPECT_GE(cos, 0.999) << "seq " << s << " layer " << layer;
      worst_cos = std::min(worst_cos, cos);
    });
  }
  std::cout << GetParam() << " BF16 matmuls: hidden states max_abs_error=" << worst_abs
            << ", worst per-layer relative error=" << worst_rel_norm
            << ", worst mean-pooled cosine to reference=" << worst_cos << "\n";
}

// Every sequence packed into one batch gives exactly what each gives alone.
TEST_P(Rwkv7GoldenTest, PackedBatchIsBitIdenticalToOneSequenceAtATime) {
  RWKV_EMBED_REQUIRE_SHARED(dir, std::string("models/") + GetParam() + "/golden.safetensors");
  Golden g = LoadRwkv7Golden(dir.parent_path());
  testing::ExpectPackedBatchIsBitIdentical(*g.model, g.ids, kernels::MatMulPrecision::kF32);
}

// Chunked evaluation with carried state, and token-by-token (recurrent mode), equal one pass bit
// for bit: v_first is per token, so nothing but the three state pieces crosses a chunk boundary.
TEST_P(Rwkv7GoldenTest, ChunkedAndRecurrentEvaluationEqualOnePass) {
  RWKV_EMBED_REQUIRE_SHARED(dir, std::string("models/") + GetParam() + "/golden.safetensors");
  Golden g = LoadRwkv7Golden(dir.parent_path());
  const size_t chunks[] = {1, 7, 50};
  testing::ExpectChunkedEvaluationEqualsOnePass(*g.model, g.ids[LongestSequence(g)], chunks,
                                                kernels::MatMulPrecision::kF32);
}

// LoadModel recognises each folder as RWKV-7 (config.json model_type, or tensor names alone for
// the authors' layout) and gives the same numbers as loading the RWKV-7 weights directly.
TEST_P(Rwkv7GoldenTest, LoadModelRecognisesTheArchitecture) {
  RWKV_EMBED_REQUIRE_SHARED(dir, std::string("models/") + GetParam() + "/model.safetensors");
  EXPECT_EQ(DetectArchitecture(dir.parent_path()), Architecture::kRwkv7);
  EXPECT_EQ(DetectArchitecture(dir), Architecture::kRwkv7);  // the file alone, no config
  auto m = LoadModel(dir.parent_path());
  EXPECT_EQ(m->Architecture(), "rwkv7");
  EXPECT_EQ(m->layer_numbering().hf, HfHiddenStates::kRwkv7);
  EXPECT_GT(m->FlopsPerToken(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, Rwkv7GoldenTest,
                         ::testing::Values("tiny-rwkv7-f32", "tiny-rwkv7-bf16",
                                           "rwkv.cpp-tiny-rwkv7"));

// rwkv.cpp's own expected logits (tests/expected-logits-7v0-834K.bin: 256 float32 after the byte
// prompt `"in`).
TEST(Rwkv7RwkvCppTest, ReproducesRwkvCppExpectedLogits) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/rwkv.cpp-tiny-rwkv7/expected-logits-rwkvcpp.bin");
  std::ifstream in(dir, std::ios::binary);
  std::vector<float> expected(256);
  in.read(reinterpret_cast<char*>(expected.data()), 256 * sizeof(float));
  ASSERT_TRUE(in) << dir;
  Rwkv7Model m(Rwkv7Weights::Load(dir.parent_path()));
  TokenBatch batch;
  batch.Add(ByteTokenizer().Encode("\"in"));
  ASSERT_EQ(batch.tokens, (std::vector<int32_t>{34, 105, 110}));
  ForwardOptions opts;
  opts.logits = true;
  const auto result = m.Forward(batch, opts);
  auto r = CompareClose(result.logits.Flat(), expected, kAtol, kRtol);
  EXPECT_EQ(r.violations, 0u) << r.Describe();
  std::cout << "rwkv.cpp expected logits: max_abs_error=" << r.max_abs_error << "\n";
}

// The byte-level tokenizer gives the golden ids of the rwkv.cpp model's texts (UTF-8 bytes,
// multi-byte characters included) and decodes them back.
TEST(Rwkv7RwkvCppTest, ByteTokenizerGivesTheGoldenIds) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/rwkv.cpp-tiny-rwkv7/golden.json");
  std::ifstream in(dir);
  const auto j = nlohmann::json::parse(in);
  const ByteTokenizer tok;
  for (const auto& s : j["sequences"]) {
    const auto text = s["text"].get<std::string>();
    EXPECT_EQ(tok.Encode(text), s["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok.Decode(s["ids"].get<std::vector<int32_t>>()), text);
  }
  EXPECT_THROW(tok.Decode(std::vector<int32_t>{256}), UsageError);
}

}  // namespace
}  // namespace rwkv_embed
