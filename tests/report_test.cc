// Report tests: MTEB-style JSON (every required field, null instead of NaN with a reason), the
// Markdown tables beside the study's numbers, the qualitative table and the gnuplot plots.
#include "report/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "report/plots.h"
#include "report/runner.h"
#include "test_util.h"

namespace rwkv_embed::report {
namespace {

using nlohmann::json;

eval::LayerResult Layer(int layer, int num_blocks, std::vector<double> cosines, double rho) {
  eval::LayerResult l;
  l.layer = layer;
  if (num_blocks >= 0 && layer >= 1) l.hf_layer = layer - 1;
  l.label = "layer " + std::to_string(layer);
  l.cosines = std::move(cosines);
  l.spearman = rho;
  l.pearson = rho / 2;
  l.spearman_ci = {rho, rho - 0.1, rho + 0.1, 0.95, 100, 0};
  l.roc_auc = 0.75;
  l.ap = 0.8;
  return l;
}

// A 3-block "rwkv" and a "glove" baseline on MRPC train-1000 and dev; layer 2's dev Spearman is
// undefined (NaN), as it is for constant cosines.
TaskResults MakeTask() {
  TaskResults t;
  t.task = "mrpc";
  PairDataset dev;
  dev.task = "mrpc";
  dev.split = "dev";
  dev.binary = true;
  dev.pairs = {{"1", "A cat sat.", "A cat | sat.", 1}, {"2", "Dogs run.", "Rain falls.", 0}};
  PairDataset train = dev;
  train.split = "train-1000";
  t.samples = {train, dev};
  for (int blocks : {3, -1}) {
    eval::MethodResult m;
    m.method = blocks < 0 ? "glove" : "rwkv";
    m.num_blocks = blocks;
    m.peak_rss_kib = 2048;
    m.peak_rss_isolated = true;
    for (const std::string split : {"train-1000", "dev"}) {
      eval::SplitResult s;
      s.task = "mrpc";
      s.split = split;
      s.n_pairs = 2;
      s.n_sentences = 4;
      s.binary = true;
      s.labels = {1, 0};
      s.embed_seconds = 0.5;
      s.tokens = 10;
      s.peak_rss_kib = 2048;
      s.threshold_source = "mrpc train (3668 pairs)";
      if (blocks < 0) {
        s.layers.push_back(Layer(0, -1, {0.9, 0.1}, 0.4));
      } else {
        for (int l = 0; l <= 4; ++l) {
          const double rho = l == 2 && split == "dev" ? std::nan("") : 0.1 * l;
          s.layers.push_back(Layer(l, 3, {0.5 + 0.1 * l, 0.25}, rho));
        }
      }
      metrics::Classification c;
      c.threshold = 0.5;
      c.accuracy = 1;
      c.f1 = 1;
      c.precision = 1;
      c.recall = 1;
      for (auto& l : s.layers) l.classification = c;
      m.splits.push_back(s);
    }
    t.methods.push_back(m);
  }
  return t;
}

RunInfo Info() {
  RunInfo r;
  r.tool_version = "9.9.9";
  r.model_name = "tiny";
  r.settings = {{"seed", 0}, {"undefined_cosine", 0.0}, {"lowercase", false}};
  r.notes = {"Model used: tiny"};
  r.evaluation_seconds = 1.5;
  return r;
}

TEST(ReportJson, EveryScoreObjectHasTheRequiredFieldsAndNoNaN) {
  const json j = TaskJson(MakeTask(), Info());
  EXPECT_FALSE(HasNonFinite(j));
  EXPECT_EQ(j["tool_version"], "9.9.9");
  EXPECT_EQ(j["task_name"], "mrpc");
  EXPECT_DOUBLE_EQ(j["evaluation_time"].get<double>(), 1.5);
  ASSERT_TRUE(j["scores"].contains("dev"));
  ASSERT_EQ(j["scores"]["dev"].size(), 6u);  // 5 rwkv layers + glove
  for (const auto& split : {"dev", "train-1000"}) {
    for (const json& o : j["scores"][split]) {
      for (const char* k :
           {"main_score", "cosine_spearman", "cosine_pearson", "roc_auc", "ap", "accuracy", "f1",
            "precision", "recall", "threshold", "method", "layer", "hf_layer", "split", "n_pairs",
            "threshold_split", "cosine_spearman_ci", "undefined_cosines", "null_reasons"}) {
        EXPECT_TRUE(o.contains(k)) << k << " missing in " << o.dump();
      }
      EXPECT_EQ(o["split"], split);
      EXPECT_EQ(o["n_pairs"], 2);
      // Every null names its reason.
      for (const auto& [k, v] : o.items()) {
        if (v.is_null()) {
          EXPECT_TRUE(o["null_reasons"].contains(k)) << k;
        }
      }
    }
  }
  const json& rwkv2 = j["scores"]["dev"][2];
  EXPECT_EQ(rwkv2["method"], "rwkv");
  EXPECT_EQ(rwkv2["layer"], 2);
  EXPECT_EQ(rwkv2["hf_layer"], 1);
  EXPECT_TRUE(rwkv2["cosine_spearman"].is_null());
  EXPECT_TRUE(rwkv2["main_score"].is_null());
  EXPECT_NE(rwkv2["null_reasons"]["cosine_spearman"].get<std::string>().find("constant"),
            std::string::npos);
  EXPECT_TRUE(j["scores"]["dev"][0]["hf_layer"].is_null());  // layer 0: no HF entry
  EXPECT_DOUBLE_EQ(j["scores"]["dev"][4]["cosine_spearman"].get<double>(), 0.4);
  EXPECT_EQ(j["scores"]["dev"][5]["method"], "glove");
  EXPECT_EQ(j["costs"].size(), 2u);
  EXPECT_DOUBLE_EQ(j["costs"][0]["splits"][0]["seconds_per_pair"].get<double>(), 0.25);
}

TEST(ReportJson, NonFiniteValuesAreDetectedAndNeverWritten) {
  EXPECT_TRUE(Number(std::nan("")).is_null());
  EXPECT_TRUE(Number(INFINITY).is_null());
  EXPECT_EQ(Number(0.5), json(0.5));
  json bad = {{"a", {1.0, std::nan("")}}};
  EXPECT_TRUE(HasNonFinite(bad));
  const auto dir = testing::TempDir();
  const auto path = dir / "bad.json";
  EXPECT_THROW(WriteJson(bad, path), NumericError);
  EXPECT_FALSE(std::filesystem::exists(path));
  WriteJson(TaskJson(MakeTask(), Info()), dir / "sub" / "ok.json");
  std::ifstream in(dir / "sub" / "ok.json");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text.find("NaN"), std::string::npos);
  EXPECT_EQ(json::parse(text)["task_name"], "mrpc");
}

TEST(ReportMarkdown, StudyTablesSideBySide) {
  const std::string md = MarkdownReport({MakeTask()}, Info(), {"plots/mrpc-layers.svg"});
  // Published numbers are present, beside ours.
  for (const char* v : {"0.2879", "0.3498", "0.3876", "0.4326", "0.4141", "0.0006", "3078.38"}) {
    EXPECT_NE(md.find(v), std::string::npos) << v;
  }
  // HF layer 1 = our layer 2 (dev: undefined) and HF 3 = our layer 4 (dev: 0.4 with its CI).
  EXPECT_NE(md.find("| RWKV HF layer 3 (ours 4) | 0.2766 | 0.4000 [0.300, 0.500] | 0.3410 | "
                    "0.4000 [0.300, 0.500] |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("no such layer: model has 3 blocks"), std::string::npos);
  EXPECT_NE(md.find("HF layers 5 7 9 11 do not exist"), std::string::npos);
  EXPECT_NE(md.find("Model used: tiny"), std::string::npos);
  EXPECT_NE(md.find("![plots/mrpc-layers.svg](plots/mrpc-layers.svg)"), std::string::npos);
  EXPECT_NE(md.find("n/a"), std::string::npos);  // the undefined Spearman, not a number
}

TEST(ReportMarkdown, QualitativeTableQuotesPairsLabelsAndCosines) {
  const std::string q = QualitativeTable(MakeTask(), "dev", 5, {2, 4});
  // The '|' inside a sentence is escaped; columns: rwkv layers 2 and 4, then glove.
  EXPECT_NE(q.find("| 1 | A cat sat. | A cat \\| sat. | 1 | 0.7000 | 0.9000 | 0.9000 |"),
            std::string::npos)
      << q;
  EXPECT_NE(q.find("| 2 | Dogs run. | Rain falls. | 0 | 0.2500 | 0.2500 | 0.1000 |"),
            std::string::npos)
      << q;
  EXPECT_EQ(QualitativeTable(MakeTask(), "test", 5, {2}), "");
}

TEST(ReportPlots, WithoutGnuplotTheDataAndScriptAreStillWritten) {
  const auto dir = testing::TempDir();
  ASSERT_EQ(setenv("RWKV_EMBED_GNUPLOT", "/nonexistent/gnuplot", 1), 0);
  const PlotFiles f = PlotLayerSweep(MakeTask(), {"train-1000", "dev"}, dir, "sweep");
  unsetenv("RWKV_EMBED_GNUPLOT");
  EXPECT_FALSE(f.rendered);
  EXPECT_NE(f.message.find("not available"), std::string::npos) << f.message;
  EXPECT_TRUE(std::filesystem::exists(dir / "sweep.dat"));
  EXPECT_TRUE(std::filesystem::exists(dir / "sweep.gp"));
  EXPECT_FALSE(std::filesystem::exists(dir / "sweep.svg"));
  std::ifstream in(dir / "sweep.dat");
  std::stringstream ss;
  ss << in.rdbuf();
  // rwkv train-1000, layer 4: Spearman 0.4 with CI [0.3, 0.5].
  EXPECT_NE(ss.str().find("4 0.4 0.3 0.5\n"), std::string::npos) << ss.str();
}

TEST(ReportPlots, GnuplotDrawsSvg) {
  if (!GnuplotAvailable()) GTEST_SKIP() << "gnuplot is not installed (scripts/setup.sh)";
  const auto dir = testing::TempDir();
  for (const PlotFiles& f : {PlotLayerSweep(MakeTask(), {"train-1000", "dev"}, dir, "sweep"),
                             PlotCosts(MakeTask(), "dev", dir, "costs")}) {
    ASSERT_TRUE(f.rendered) << f.message;
    std::ifstream in(f.svg);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_NE(ss.str().find("<svg"), std::string::npos);
    EXPECT_NE(ss.str().find("dev"), std::string::npos);
  }
}

TEST(Runner, SeedLists) {
  EXPECT_EQ(ParseSeedList("0-4"), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(ParseSeedList("2..3,9"), (std::vector<uint64_t>{2, 3, 9}));
  EXPECT_TRUE(ParseSeedList("none").empty());
  EXPECT_THROW(ParseSeedList("4-2"), UsageError);
  EXPECT_THROW(ParseSeedList("a"), UsageError);
}

}  // namespace
}  // namespace rwkv_embed::report
