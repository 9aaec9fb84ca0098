// Report tests: MTEB-style JSON (every required field, null instead of NaN with a reason), the
// Markdown tables beside the study's numbers, the qualitative table and the gnuplot plots.
#include "report/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "model/layer_spec.h"
#include "report/plots.h"
#include "report/runner.h"
#include "test_util.h"

namespace rwkv_embed::report {
namespace {

using nlohmann::json;

// What RwkvEmbedder::DescribeLayers gives for a model of this numbering.
std::vector<LayerInfo> RwkvLayerInfo(const LayerNumbering& n) {
  std::vector<LayerInfo> out;
  for (int l = 0; l <= n.last(); ++l) {
    LayerInfo info{l, n.ShortLabel(l), std::nullopt, n.NoHfReason(l)};
    if (n.HfIndexOf(l) >= 0) info.hf_index = n.HfIndexOf(l);
    out.push_back(info);
  }
  return out;
}

eval::LayerResult Layer(int layer, const std::vector<LayerInfo>& info, std::vector<double> cosines,
                        double rho) {
  eval::LayerResult l;
  l.layer = layer;
  l.hf_layer = info[layer].hf_index;
  l.no_hf_reason = info[layer].no_hf_reason;
  l.label = info[layer].label;
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
    m.layer_info = blocks < 0
                       ? std::vector<LayerInfo>{{0, "glove", std::nullopt, "not a layered model"}}
                       : RwkvLayerInfo({blocks, HfHiddenStates::kRwkv6});
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
        s.layers.push_back(Layer(0, m.layer_info, {0.9, 0.1}, 0.4));
      } else {
        for (int l = 0; l <= 4; ++l) {
          const double rho = l == 2 && split == "dev" ? std::nan("") : 0.1 * l;
          s.layers.push_back(Layer(l, m.layer_info, {0.5 + 0.1 * l, 0.25}, rho));
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
  const std::string q = QualitativeTable(MakeTask(), "dev", 5, {1, 3});
  // The '|' inside a sentence is escaped; columns: rwkv HF layers 1 and 3 (ours 2 and 4), then
  // glove.
  EXPECT_NE(q.find("| 1 | A cat sat. | A cat \\| sat. | 1 | 0.7000 | 0.9000 | 0.9000 |"),
            std::string::npos)
      << q;
  EXPECT_NE(q.find("| 2 | Dogs run. | Rain falls. | 0 | 0.2500 | 0.2500 | 0.1000 |"),
            std::string::npos)
      << q;
  EXPECT_EQ(QualitativeTable(MakeTask(), "test", 5, {2}), "");
}

// MakeTask plus an RWKV-7 model of 3 blocks ("rwkv:seven") and its random control: what
// `reproduce --model A --model B` produces.
TaskResults TwoArchitectures() {
  TaskResults t = MakeTask();
  eval::MethodResult seven = t.methods[0];
  seven.method = "rwkv:seven";
  seven.layer_info = RwkvLayerInfo({3, HfHiddenStates::kRwkv7});
  for (eval::SplitResult& s : seven.splits) {
    for (eval::LayerResult& l : s.layers) l = Layer(l.layer, seven.layer_info, l.cosines, 0.05);
  }
  eval::MethodResult control = seven;
  control.method = "random-control:seven";
  control.control_of = "rwkv:seven";
  t.methods.push_back(seven);
  t.methods.push_back(control);
  return t;
}

TEST(ReportJson, LayerLabelsAndHfIndicesComeFromEachModel) {
  const json j = TaskJson(TwoArchitectures(), Info());
  std::map<std::pair<std::string, int>, json> scores;
  for (const json& o : j["scores"]["dev"]) scores[{o["method"], o["layer"]}] = o;
  auto by = [&](const std::string& method, int layer) { return scores[{method, layer}]; };
  // RWKV-6: HF = ours - 1; layer 0 has none.
  EXPECT_EQ(by("rwkv", 4)["hf_layer"], 3);
  EXPECT_EQ(by("rwkv", 4)["layer_label"], "after ln_out");
  EXPECT_EQ(by("rwkv", 3)["hf_layer"], 2);
  EXPECT_EQ(by("rwkv", 3)["layer_label"], "block 3");
  EXPECT_TRUE(by("rwkv", 0)["hf_layer"].is_null());
  // RWKV-7: HF = ours for 1..L-1, HF L = ours L+1; layers 0 and L have none, each with why.
  EXPECT_EQ(by("rwkv:seven", 1)["hf_layer"], 1);
  EXPECT_EQ(by("rwkv:seven", 2)["hf_layer"], 2);
  EXPECT_EQ(by("rwkv:seven", 4)["hf_layer"], 3);
  EXPECT_EQ(by("rwkv:seven", 0)["layer_label"], "after pre_norm");
  for (int l : {0, 3}) {
    const json& o = by("rwkv:seven", l);
    EXPECT_TRUE(o["hf_layer"].is_null()) << l;
    EXPECT_NE(o["null_reasons"]["hf_layer"].get<std::string>().find("RWKV-7"), std::string::npos)
        << o["null_reasons"].dump();
  }
  EXPECT_TRUE(by("glove", 0)["hf_layer"].is_null());
  // The methods list says which layers each has and what a control stands beside.
  const json& methods = j["methods"];
  ASSERT_EQ(methods.size(), 4u);
  EXPECT_EQ(methods[2]["layers"].size(), 5u);
  EXPECT_TRUE(methods[2]["layers"][3]["hf_layer"].is_null());
  EXPECT_EQ(methods[3]["control_of"], "rwkv:seven");
  EXPECT_TRUE(methods[0]["control_of"].is_null());
}

TEST(ReportMarkdown, TwoModelsSideBySideEachWithItsOwnHfLayers) {
  const std::string md = MarkdownReport({TwoArchitectures()}, Info(), {});
  // The study's HF layer 1 is our layer 2 in RWKV-6 and our layer 1 in RWKV-7.
  EXPECT_NE(md.find("| RWKV HF layer 1 (ours 2) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| rwkv:seven HF layer 1 (ours 1) | 0.2879 | 0.0500 [-0.050, 0.150] |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| rwkv:seven HF layer 3 (ours 4) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| rwkv:seven (all layers, one pass) |"), std::string::npos) << md;
  EXPECT_NE(md.find("rwkv:seven has only 3 blocks"), std::string::npos) << md;
  // Paired tests label layers with each model's own HF index; the control is compared with its
  // model only when the runner made the comparisons (not here): the sweep lists all four.
  EXPECT_NE(md.find("| random-control:seven | 3 | — | dev |"), std::string::npos) << md;
}

TEST(ReportPlots, TicksShowAnHfIndexOnlyWhereEveryModelAgrees) {
  const auto dir = testing::TempDir();
  ASSERT_EQ(setenv("RWKV_EMBED_GNUPLOT", "/nonexistent/gnuplot", 1), 0);
  const PlotFiles f = PlotLayerSweep(TwoArchitectures(), {"dev"}, dir, "two");
  unsetenv("RWKV_EMBED_GNUPLOT");
  std::ifstream in(f.script);
  const std::string gp((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(gp.find("\"4\\n(HF 3)\" 4"), std::string::npos) << gp;  // both: HF 3
  EXPECT_NE(gp.find("\"2\" 2"), std::string::npos) << gp;           // HF 1 vs HF 2
  EXPECT_NE(gp.find("\"3\" 3"), std::string::npos) << gp;           // HF 2 vs none
  // The control is drawn dashed like a control, the RWKV-7 model solid.
  std::ifstream din(f.data);
  const std::string dat((std::istreambuf_iterator<char>(din)), {});
  EXPECT_NE(dat.find("# random-control:seven dev"), std::string::npos);
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
