// End-to-end tests of the pooling methods beyond the mean on the shared tiny model: `eval
// --poolings` (methods in the JSON with what they were fitted on), `embed --method/--template`,
// and clear usage errors; and the report's pooling section on hand-made results.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "io/npy.h"
#include "metrics/metrics.h"
#include "report/pooling_report.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using nlohmann::json;
using testing::CopyHead;
using testing::RunCli;

TEST(CliPoolingTest, EvalScoresEachMethodAndRecordsWhatItWasFittedOn) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto tmp = testing::TempDir();
  const auto dir = tmp / "data";
  CopyHead(data, dir / "mrpc/train.tsv", 61);  // 60 fit pairs
  CopyHead(data.parent_path() / "dev.tsv", dir / "mrpc/dev.tsv", 31);
  const auto out = tmp / "mrpc.json";
  const auto run =
      RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir", dir.string(), "--model",
              model.parent_path().string(), "--poolings",
              "state-shift,state-wkv+pca8,echo,prompteol,mean+abtt,fusion-learned,"
              "attention",
              "--bootstrap", "50", "--subset-seeds", "none", "--output", out.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(out);
  const json j = json::parse(in);
  std::map<std::string, json> methods;
  for (const json& m : j["methods"]) methods[m["method"]] = m;
  for (const char* m : {"rwkv/state-shift", "rwkv/state-wkv+pca8", "rwkv/echo", "rwkv/prompteol",
                        "rwkv/mean+abtt", "rwkv/fusion-learned", "rwkv/attention"}) {
    ASSERT_TRUE(methods.count(m)) << m;
    EXPECT_EQ(methods[m]["pooling_of"], "rwkv") << m;
  }
  // Unfitted methods say so; fitted ones name the train split, never dev.
  EXPECT_TRUE(methods["rwkv/echo"]["fitted_on"].is_null());
  for (const char* m :
       {"rwkv/state-wkv+pca8", "rwkv/mean+abtt", "rwkv/fusion-learned", "rwkv/attention"}) {
    const std::string f = methods[m]["fitted_on"];
    EXPECT_NE(f.find("mrpc train (60 pairs"), std::string::npos) << m << ": " << f;
    EXPECT_EQ(f.find("dev"), std::string::npos) << m << ": " << f;
  }
  EXPECT_EQ(methods["rwkv/attention"]["token_weights"].size(), 3u);
  // State layers are blocks (1, 2); fusion has one layer, 0.
  int state_layers = 0, fusion_layers = 0;
  for (const json& s : j["scores"]["dev"]) {
    state_layers += s["method"] == "rwkv/state-shift";
    fusion_layers += s["method"] == "rwkv/fusion-learned";
  }
  EXPECT_EQ(state_layers, 2);
  EXPECT_EQ(fusion_layers, 1);
  int pooling_tests = 0;
  for (const json& c : j["comparisons"]) pooling_tests += c["kind"] == "pooling_vs_mean";
  EXPECT_EQ(pooling_tests, 7);
  EXPECT_EQ(j["settings"]["poolings"].size(), 7u);
}

TEST(CliPoolingTest, UsageErrorsAreClear) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto tmp = testing::TempDir();
  auto run =
      RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir",
              data.parent_path().parent_path().string(), "--model", model.parent_path().string(),
              "--poolings", "mean+blur", "--output", (tmp / "x.json").string()});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("unknown post-processing 'blur'"), std::string::npos) << run.err;
  run = RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir",
                data.parent_path().parent_path().string(), "--model", model.parent_path().string(),
                "--poolings", "attention", "--fit-split", "none", "--output",
                (tmp / "x.json").string()});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("mrpc has none (--fit-split train"), std::string::npos) << run.err;
  run = RunCli({"embed", "--model", model.parent_path().string(), "--method", "mean+abtt",
                "--output", (tmp / "x.npy").string()},
               "a sentence\n");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--fit-pairs"), std::string::npos) << run.err;
}

TEST(CliPoolingTest, EmbedWritesPromptAndStateMethods) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const auto tmp = testing::TempDir();
  auto run = RunCli({"embed", "--model", model.parent_path().string(), "--method", "echo",
                     "--layers", "all", "--output", (tmp / "echo.npy").string()},
                    "a man plays\nthe cat sat\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(ReadNpyF32(tmp / "echo.npy").shape, (std::vector<int64_t>{4, 2, 64}));
  run = RunCli({"embed", "--model", model.parent_path().string(), "--method", "state-shift",
                "--output", (tmp / "state.npy").string()},
               "a man plays\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(ReadNpyF32(tmp / "state.npy").shape, (std::vector<int64_t>{2, 1, 128}));
  // A user template file.
  std::ofstream(tmp / "mine.json")
      << R"({"templates":[{"name":"q","template":"Q: {text} A:","pool":"last"}]})";
  run = RunCli({"embed", "--model", model.parent_path().string(), "--template",
                (tmp / "mine.json").string(), "--output", (tmp / "q.npy").string()},
               "a man plays\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(ReadNpyF32(tmp / "q.npy").shape, (std::vector<int64_t>{1, 1, 64}));
}

// A one-layer method whose cosines are the labels plus `noise` x a fixed pattern.
eval::MethodResult Method(const std::string& name, const std::vector<double>& labels, double noise,
                          const std::string& pooling_of) {
  eval::MethodResult m;
  m.method = name;
  m.pooling_of = pooling_of;
  m.layer_info = {{0, "layer 0", std::nullopt, ""}, {1, "layer 1", std::nullopt, ""}};
  eval::SplitResult s;
  s.split = "dev";
  s.labels = labels;
  s.n_pairs = static_cast<int64_t>(labels.size());
  for (int l = 0; l < 2; ++l) {
    eval::LayerResult lr;
    lr.layer = l;
    lr.label = "layer " + std::to_string(l);
    for (size_t i = 0; i < labels.size(); ++i) {
      lr.cosines.push_back(labels[i] + (noise + l * 0.5) * std::sin(7.0 * i));
    }
    lr.spearman = metrics::Spearman(lr.cosines, labels);
    lr.spearman_ci = {lr.spearman - 0.1, lr.spearman + 0.1};
    s.layers.push_back(lr);
  }
  m.splits.push_back(s);
  return m;
}

TEST(PoolingReportTest, SectionAnswersWhetherAnyRwkvMethodBeatsGlove) {
  std::vector<double> labels;
  for (int i = 0; i < 200; ++i) labels.push_back(i % 2);
  report::TaskResults t;
  t.task = "mrpc";
  PairDataset dev;
  dev.split = "dev";
  t.samples.push_back(dev);
  t.methods.push_back(Method("glove", labels, 1.0, ""));
  t.methods.back().layer_info.resize(1);
  t.methods.back().splits[0].layers.resize(1);
  t.methods.push_back(Method("rwkv", labels, 1.2, ""));
  t.methods.push_back(Method("rwkv/echo", labels, 0.2, "rwkv"));  // far better than GloVe
  const metrics::ResampleOptions ro{300, 1, 0.95};
  t.comparisons = report::PoolingComparisons(t, ro);
  ASSERT_EQ(t.comparisons.size(), 3u);     // rwkv vs glove, echo vs rwkv, echo vs glove
  EXPECT_EQ(t.comparisons[1].layer_a, 0);  // the best layer (less noise at layer 0)
  const std::string md = report::PoolingComparisonSection(t);
  EXPECT_NE(md.find("| rwkv/echo | 0 (layer 0) |"), std::string::npos) << md;
  EXPECT_NE(md.find("**Does any RWKV method beat averaged GloVe on mrpc dev?** Yes: the best "
                    "RWKV system, rwkv/echo layer 0"),
            std::string::npos)
      << md;
  // The study's plots leave pooling methods out; the pooling plot keeps GloVe, rwkv and them.
  EXPECT_EQ(report::WithoutPoolingMethods(t).methods.size(), 2u);
  ASSERT_TRUE(report::PoolingMethodsOnly(t).has_value());
  EXPECT_EQ(report::PoolingMethodsOnly(t)->methods.size(), 3u);
  // Without the better method, the answer is no.
  t.methods.pop_back();
  t.methods.push_back(Method("rwkv/center", labels, 1.3, "rwkv"));
  t.comparisons = report::PoolingComparisons(t, ro);
  EXPECT_NE(report::PoolingComparisonSection(t).find("GloVe on mrpc dev?** No:"),
            std::string::npos);
  // No pooling method: no section, no pooling plot.
  t.methods.pop_back();
  EXPECT_EQ(report::PoolingComparisonSection(t), "");
  EXPECT_FALSE(report::PoolingMethodsOnly(t).has_value());
}

}  // namespace
}  // namespace rwkv_embed
