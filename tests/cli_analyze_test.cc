// End-to-end tests of `rwkv-embed analyze` (and `reproduce --beyond`) on the shared tiny models:
// every tap and every weight matrix present in the JSON, the dataset statistics equal to a direct
// recomputation from `embed` outputs, per-text statistics independent of how texts are split
// across batches, and clear errors (exit codes) for bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "analysis/statistics.h"
#include "cli_test_util.h"
#include "data/pairs.h"
#include "io/npy.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using nlohmann::json;
using testing::ReadFile;
using testing::ReadJson;
using testing::RunCli;
using testing::SmallData;

class AnalyzeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedFile("models/tiny-rwkv6-f32/model.safetensors").empty()) {
      GTEST_SKIP() << "shared models absent (set RWKV_EMBED_SHARED)";
    }
    scratch_ = testing::TempDir() / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(scratch_);
    std::filesystem::create_directories(scratch_);
    data_ = SmallData(scratch_);
  }
  std::filesystem::path Model(const std::string& name) const {
    return testing::SharedDir() / "models" / name;
  }
  testing::CliRun Analyze(const std::string& model, const std::string& json_name,
                          std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"analyze",
                                     "--model",
                                     Model(model).string(),
                                     "--data-dir",
                                     data_.string(),
                                     "--task",
                                     "mrpc",
                                     "--split",
                                     "dev",
                                     "--output",
                                     (scratch_ / json_name).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  }
  std::filesystem::path scratch_, data_;
};

// Every tap (ours and HF numbering), every field, finite where defined; weights per block.
void CheckLayout(const json& j, int blocks, const std::vector<std::string>& matrices,
                 const std::vector<json>& hf_layers) {
  ASSERT_EQ(j["layers"].size(), static_cast<size_t>(blocks + 2));
  for (int l = 0; l < blocks + 2; ++l) {
    const json& o = j["layers"][l];
    EXPECT_EQ(o["layer"], l);
    EXPECT_EQ(o["hf_layer"], hf_layers[l]) << "layer " << l;
    for (const char* f : {"prompt_entropy", "dataset_entropy", "curvature", "anisotropy",
                          "anisotropy_centered", "effective_rank"}) {
      ASSERT_TRUE(o[f].is_number()) << f << " of layer " << l << ": " << o.dump();
    }
    for (const char* f : {"prompt_entropy", "dataset_entropy"}) {
      EXPECT_GT(o[f].get<double>(), 0.0) << f;
      EXPECT_LE(o[f].get<double>(), 1.0 + 1e-12) << f;
    }
    EXPECT_GT(o["curvature"].get<double>(), 0.0);
    EXPECT_LE(o["curvature"].get<double>(), 3.1416);
    EXPECT_EQ(o["prompt_entropy_texts"], j["texts"]);  // every MRPC sentence has >= 2 tokens
  }
  ASSERT_EQ(j["weights"].size(), blocks * matrices.size());
  for (int b = 0; b < blocks; ++b) {
    for (size_t m = 0; m < matrices.size(); ++m) {
      const json& w = j["weights"][b * matrices.size() + m];
      EXPECT_EQ(w["block"], b + 1);
      EXPECT_EQ(w["matrix"], matrices[m]);
      const auto shape = w["shape"].get<std::vector<int64_t>>();
      const auto sv = w["singular_values"].get<std::vector<double>>();
      ASSERT_EQ(sv.size(), static_cast<size_t>(std::min(shape[0], shape[1])));
      EXPECT_TRUE(std::is_sorted(sv.rbegin(), sv.rend())) << "not descending";
      EXPECT_GT(sv.back(), 0.0);  // random dense matrices have full rank
      EXPECT_NEAR(w["effective_rank"].get<double>(), analysis::EffectiveRank(sv), 1e-9);
      EXPECT_TRUE(w["decay_exponent"].is_number());
    }
  }
}

TEST_F(AnalyzeCliTest, Rwkv6JsonAgreesWithEmbedOutputs) {
  const testing::CliRun r =
      Analyze("tiny-rwkv6-f32", "a.json", {"--out", (scratch_ / "report").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = ReadJson(scratch_ / "a.json");
  // RWKV-6: HF hidden_states[i] = our layer i + 1; our layer 0 is not in HF's tuple.
  CheckLayout(j, 2,
              {"attention.receptance.weight", "attention.key.weight", "attention.value.weight",
               "attention.gate.weight", "attention.output.weight", "feed_forward.key.weight",
               "feed_forward.receptance.weight", "feed_forward.value.weight"},
              {nullptr, 0, 1, 2});
  // The texts as eval embeds them, through `embed`, and the dataset statistics recomputed.
  const PairDataset dev = LoadTask("mrpc", "dev", data_);
  const std::vector<std::string> texts = UniqueSentences(dev, nullptr);
  ASSERT_EQ(j["texts"], texts.size());
  {
    std::ofstream out(scratch_ / "texts.txt");
    for (const std::string& t : texts) out << t << "\n";
  }
  const testing::CliRun e = RunCli({"embed", "--model", Model("tiny-rwkv6-f32").string(), "--input",
                                    (scratch_ / "texts.txt").string(), "--output",
                                    (scratch_ / "e.npy").string(), "--layers", "all"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const NpyArray emb = ReadNpyF32(scratch_ / "e.npy");
  ASSERT_EQ(emb.shape, (std::vector<int64_t>{4, static_cast<int64_t>(texts.size()), 64}));
  for (int l = 0; l < 4; ++l) {
    const analysis::RowSet set{emb.data.data() + l * texts.size() * 64,
                               static_cast<int64_t>(texts.size()), 64, 0};
    const json& o = j["layers"][l];
    EXPECT_NEAR(o["dataset_entropy"].get<double>(), analysis::MatrixEntropy(set), 1e-9);
    EXPECT_NEAR(o["anisotropy"].get<double>(), *analysis::Anisotropy(set, false), 1e-9);
    EXPECT_NEAR(o["anisotropy_centered"].get<double>(), *analysis::Anisotropy(set, true), 1e-9);
    EXPECT_NEAR(o["effective_rank"].get<double>(),
                analysis::EffectiveRank(analysis::RowSingularValues(set, true)), 1e-7);
  }
  // The report says what the entropy is and what random weights mean, and links the plots.
  const std::string md = ReadFile(scratch_ / "report" / "report.md");
  EXPECT_NE(md.find("Beyond the study: layer analysis"), std::string::npos);
  EXPECT_NE(md.find("\"Shannon entropy of hidden states\""), std::string::npos);
  EXPECT_NE(md.find("say nothing about RWKV"), std::string::npos);
  for (const char* p : {"analysis-entropy", "analysis-geometry", "analysis-weights"}) {
    EXPECT_TRUE(std::filesystem::exists(scratch_ / "report" / "plots" / (std::string(p) + ".gp")))
        << p;
  }
}

TEST_F(AnalyzeCliTest, TextsSplitAcrossBatchesGiveTheSameStatistics) {
  // 7 tokens a batch: almost every sentence arrives in several pieces.
  ASSERT_EQ(Analyze("tiny-rwkv6-f32", "whole.json", {"--no-weights"}).exit_code, 0);
  const testing::CliRun r =
      Analyze("tiny-rwkv6-f32", "pieces.json", {"--no-weights", "--batch-tokens", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json a = ReadJson(scratch_ / "whole.json"), b = ReadJson(scratch_ / "pieces.json");
  EXPECT_TRUE(b["weights"].empty());
  for (size_t l = 0; l < a["layers"].size(); ++l) {
    for (const char* f : {"prompt_entropy", "curvature", "dataset_entropy", "anisotropy"}) {
      EXPECT_NEAR(a["layers"][l][f].get<double>(), b["layers"][l][f].get<double>(), 1e-6)
          << f << " layer " << l;
    }
  }
}

TEST_F(AnalyzeCliTest, Rwkv7UsesFlaNamesAndItsHfNumbering) {
  const testing::CliRun r = Analyze("tiny-rwkv7-f32", "a7.json", {"--alpha", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = ReadJson(scratch_ / "a7.json");
  EXPECT_EQ(j["settings"]["alpha"], 2.0);
  EXPECT_EQ(j["model"]["architecture"], "rwkv7");
  // RWKV-7 (fla): HF [i] = our i for 1 <= i < L, HF [L] = our L + 1; our 0 and L are absent.
  CheckLayout(j, 2,
              {"attn.r_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight",
               "attn.o_proj.weight", "ffn.key.weight", "ffn.value.weight"},
              {nullptr, 1, nullptr, 2});
}

TEST_F(AnalyzeCliTest, ReproduceBeyondAddsTheLayerAnalysisToItsReport) {
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  const auto out = scratch_ / "repro";
  const testing::CliRun r = RunCli({"reproduce",
                                    "--model",
                                    Model("tiny-rwkv6-f32").string(),
                                    "--glove",
                                    glove.string(),
                                    "--data-dir",
                                    data_.string(),
                                    "--out",
                                    out.string(),
                                    "--tasks",
                                    "mrpc",
                                    "--no-sif",
                                    "--no-random-control",
                                    "--bootstrap",
                                    "0",
                                    "--subset-seeds",
                                    "none",
                                    "--train-subset",
                                    "20",
                                    "--beyond"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto dir = out / "tiny-rwkv6-f32";
  const json j = ReadJson(dir / "analysis-mrpc-dev.json");
  EXPECT_EQ(j["split"], "dev");
  EXPECT_EQ(j["layers"].size(), 4u);
  EXPECT_EQ(j["weights"].size(), 16u);
  const std::string md = ReadFile(dir / "report.md");
  EXPECT_NE(md.find("Table 1"), std::string::npos);  // the study's report is still there
  const size_t at = md.find("## Beyond the study: layer analysis");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(md.find("## Beyond the study: layer analysis", at + 1), std::string::npos);
  EXPECT_NE(md.find("### tiny-rwkv6-f32 mrpc dev"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir / "plots" / "analysis-entropy.gp"));
  EXPECT_TRUE(std::filesystem::exists(dir / "plots" / "analysis-weights.gp"));
}

TEST_F(AnalyzeCliTest, BadInputFailsClearlyAndWritesNothing) {
  const auto out = scratch_ / "bad.json";
  const auto run = [&](std::vector<std::string> args) {
    const testing::CliRun r = RunCli(args);
    EXPECT_FALSE(std::filesystem::exists(out));
    return r;
  };
  const std::string model = Model("tiny-rwkv6-f32").string();
  testing::CliRun r = run({"analyze", "--model", model, "--data-dir", data_.string(), "--task",
                           "qqp", "--split", "dev", "--output", out.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("qqp"), std::string::npos) << r.err;
  r = run({"analyze", "--model", model, "--data-dir", (scratch_ / "nowhere").string(), "--task",
           "mrpc", "--split", "dev", "--output", out.string()});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  r = run({"analyze", "--model", (scratch_ / "no-model").string(), "--data-dir", data_.string(),
           "--task", "mrpc", "--split", "dev", "--output", out.string()});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("no-model"), std::string::npos) << r.err;
  r = run({"analyze", "--model", model, "--data-dir", data_.string(), "--task", "mrpc", "--split",
           "validation", "--output", out.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("validation"), std::string::npos) << r.err;
  for (const char* alpha : {"0", "-1", "nan"}) {
    r = run({"analyze", "--model", model, "--data-dir", data_.string(), "--task", "mrpc", "--split",
             "dev", "--output", out.string(), "--alpha", alpha});
    EXPECT_EQ(r.exit_code, 2) << alpha;
    EXPECT_NE(r.err.find("--alpha"), std::string::npos) << r.err;
  }
  r = run({"analyze", "--model", model, "--data-dir", data_.string(), "--task", "mrpc", "--split",
           "dev", "--output", (scratch_ / "bad.txt").string()});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace rwkv_embed
