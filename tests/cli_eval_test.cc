// End-to-end tests of `rwkv-embed eval` (the CLI forms of issue 3, as written) and of a small
// `rwkv-embed reproduce` on the shared tiny model, on a data folder cut down from ../shared/data
// (same files, same quirks: BOM, unbalanced quotes, extra STS-B columns) so it runs in seconds.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cli_test_util.h"
#include "report/report.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using nlohmann::json;
using testing::ReadJson;
using testing::RunCli;
using testing::SmallData;

void ExpectScoreObject(const json& o, const std::string& method, const std::string& split,
                       int n_pairs, bool binary) {
  EXPECT_EQ(o["method"], method);
  EXPECT_EQ(o["split"], split);
  EXPECT_EQ(o["n_pairs"], n_pairs);
  for (const char* k : {"main_score", "cosine_spearman", "cosine_pearson", "layer", "hf_layer"}) {
    EXPECT_TRUE(o.contains(k)) << k;
  }
  for (const char* k : {"roc_auc", "ap", "accuracy", "f1", "threshold"}) {
    EXPECT_EQ(o.contains(k), binary) << k;
  }
  EXPECT_TRUE(o["cosine_spearman"].is_number()) << o.dump();
}

TEST(CliEval, GloveOnEverySplitOfMrpcAndStsb) {
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto data_dir = data.parent_path().parent_path();
  const auto dir = testing::TempDir();
  struct Case {
    std::string task, split;
    int n;
  };
  for (const Case& c : {Case{"mrpc", "dev", 408}, Case{"mrpc", "test", 1725},
                        Case{"mrpc", "train-1000", 1000}, Case{"stsb", "test", 1379}}) {
    const auto out = dir / (c.task + "-" + c.split + ".json");
    const auto run = RunCli({"eval", "--task", c.task, "--split", c.split, "--data-dir",
                             data_dir.string(), "--glove", glove.string(), "--output", out.string(),
                             "--bootstrap", "100", "--subset-seeds", "0-2"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const json j = ReadJson(out);
    EXPECT_FALSE(report::HasNonFinite(j));
    ASSERT_EQ(j["scores"][c.split].size(), 1u);
    const json& o = j["scores"][c.split][0];
    ExpectScoreObject(o, "glove", c.split, c.n, c.task == "mrpc");
    EXPECT_EQ(o["layer"], 0);
    EXPECT_TRUE(o["hf_layer"].is_null());
    EXPECT_GT(o["cosine_spearman"].get<double>(), 0.2) << c.task << " " << c.split;
    if (c.task == "mrpc") {
      // Fitted on train; for the train subset, on the rest of train.
      const std::string from = o["threshold_split"];
      EXPECT_NE(from.find("mrpc train"), std::string::npos) << from;
      if (c.split == "train-1000") {
        EXPECT_NE(from.find("minus the 1000 pairs scored here (2668 pairs)"), std::string::npos)
            << from;
      }
    }
    EXPECT_EQ(j["settings"]["lowercase"], false);
    EXPECT_EQ(j["settings"]["word_tokenizer"], "whitespace");
    EXPECT_EQ(j["subset_spread"][0]["seeds"], json({0, 1, 2}));
    EXPECT_NE(run.out.find("glove"), std::string::npos);
  }
}

TEST(CliEval, GloveRegexLowercaseChangesTheTokensAndIsRecorded) {
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto data_dir = data.parent_path().parent_path();
  const auto dir = testing::TempDir();
  const auto plain = dir / "plain.json", lower = dir / "lower.json";
  const std::vector<std::string> base = {
      "eval",       "--task",          "mrpc",    "--split",      "dev",
      "--data-dir", data_dir.string(), "--glove", glove.string(), "--bootstrap",
      "0",          "--fit-split",     "none"};
  auto a = base;
  a.insert(a.end(), {"--output", plain.string()});
  auto b = base;
  b.insert(b.end(), {"--word-tokenizer", "regex", "--lowercase", "--output", lower.string()});
  ASSERT_EQ(RunCli(a).exit_code, 0);
  const auto run = RunCli(b);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json jp = ReadJson(plain), jl = ReadJson(lower);
  EXPECT_EQ(jl["settings"]["lowercase"], true);
  EXPECT_EQ(jl["settings"]["word_tokenizer"], "regex");
  EXPECT_NE(jp["scores"]["dev"][0]["cosine_spearman"], jl["scores"]["dev"][0]["cosine_spearman"]);
  // No fitting split: threshold metrics are null with the reason, the CI says bootstrap is off.
  const json& o = jl["scores"]["dev"][0];
  EXPECT_TRUE(o["accuracy"].is_null());
  EXPECT_NE(o["null_reasons"]["accuracy"].get<std::string>().find("--fit-split none"),
            std::string::npos);
  EXPECT_TRUE(o["cosine_spearman_ci"]["lo"].is_null());
  EXPECT_FALSE(report::HasNonFinite(jl));
}

TEST(CliEval, TinyModelEveryLayerBothNumberings) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/config.json");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto dir = testing::TempDir();
  const auto data_dir = SmallData(dir);
  const auto out = dir / "rwkv.json";
  auto args = testing::EvalMrpcDevArgs(data_dir);
  args.insert(args.end(), {"--model", model.parent_path().string(), "--layers", "all", "--pooling",
                           "mean", "--output", out.string(), "--bootstrap", "50", "--subset-size",
                           "20", "--threads", "2"});
  const auto run = RunCli(args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json j = ReadJson(out);
  EXPECT_FALSE(report::HasNonFinite(j));
  const json& dev = j["scores"]["dev"];
  ASSERT_EQ(dev.size(), 5u);  // layers 0..L+1 of a 3-block model
  for (int l = 0; l < 5; ++l) {
    ExpectScoreObject(dev[l], "rwkv", "dev", 30, true);
    EXPECT_EQ(dev[l]["layer"], l);
    if (l == 0) {
      EXPECT_TRUE(dev[l]["hf_layer"].is_null());
    } else {
      EXPECT_EQ(dev[l]["hf_layer"], l - 1);
    }
  }
  EXPECT_EQ(j["settings"]["pooling"], "mean");
  EXPECT_NE(run.err.find("tiny test model"), std::string::npos) << run.err;

  // HF indices 1,3 = our layers 2,4.
  const auto out2 = dir / "hf.json";
  const auto run2 =
      RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir", data_dir.string(),
              "--model", model.parent_path().string(), "--layers", "1,3", "--hf-index", "--output",
              out2.string(), "--bootstrap", "0", "--fit-split", "none"});
  ASSERT_EQ(run2.exit_code, 0) << run2.err;
  const json j2 = ReadJson(out2);
  ASSERT_EQ(j2["scores"]["dev"].size(), 2u);
  EXPECT_EQ(j2["scores"]["dev"][0]["layer"], 2);
  EXPECT_EQ(j2["scores"]["dev"][1]["hf_layer"], 3);
  // Same layer, same pairs: the same cosines whichever way the layer was named.
  EXPECT_EQ(j2["scores"]["dev"][0]["cosine_spearman"], dev[2]["cosine_spearman"]);
}

TEST(CliEval, ErrorsNameTheProblem) {
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto data_dir = data.parent_path().parent_path().string();
  const auto out = (testing::TempDir() / "x.json").string();
  auto run =
      RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir", data_dir, "--output", out});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--glove"), std::string::npos) << run.err;
  run = RunCli({"eval", "--task", "mrpc", "--split", "validation", "--data-dir", data_dir,
                "--glove", "x.txt", "--output", out});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("validation"), std::string::npos) << run.err;
  run = RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir", "/nonexistent", "--glove",
                "x.txt", "--output", out});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("/nonexistent"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(CliReproduce, SmallEndToEndOnTheTinyModel) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/config.json");
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto scratch = testing::TempDir();
  const auto data_dir = SmallData(scratch);
  const auto out = scratch / "results";
  const auto run =
      RunCli({"reproduce", "--model", model.parent_path().string(), "--glove", glove.string(),
              "--data-dir", data_dir.string(), "--out", out.string(), "--train-subset", "20",
              "--subset-size", "15", "--bootstrap", "50", "--threads", "2"});
  // (train-20, dev, test: 20, 30, 20 pairs; STS-B dev/test 20 each; fits on 40 / 20 train pairs)
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto dir = out / "tiny-rwkv6-bf16";
  for (const char* f : {"mrpc.json", "stsb.json", "report.md", "plots/mrpc-layers.dat",
                        "plots/mrpc-layers.gp", "plots/mrpc-costs.gp"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  }
  const json mrpc = ReadJson(dir / "mrpc.json");
  EXPECT_FALSE(report::HasNonFinite(mrpc));
  for (const char* split : {"train-20", "dev", "test"}) {
    // glove, sif, 5 rwkv layers, 5 random-control layers
    ASSERT_EQ(mrpc["scores"][split].size(), 12u) << split;
    std::set<std::string> methods;
    for (const json& o : mrpc["scores"][split]) methods.insert(o["method"]);
    EXPECT_EQ(methods, (std::set<std::string>{"glove", "sif", "rwkv", "random-control"}));
  }
  EXPECT_FALSE(mrpc["comparisons"].empty());
  bool vs_glove = false, vs_random = false;
  for (const json& c : mrpc["comparisons"]) {
    vs_glove |= c["kind"] == "vs_baseline" && c["method_b"] == "glove";
    vs_random |= c["kind"] == "vs_random";
  }
  EXPECT_TRUE(vs_glove && vs_random);
  EXPECT_EQ(mrpc["costs"][0]["method"], "glove");
  EXPECT_EQ(mrpc["costs"][0]["peak_rss_isolated"], true);
  const json stsb = ReadJson(dir / "stsb.json");
  EXPECT_FALSE(report::HasNonFinite(stsb));
  EXPECT_FALSE(stsb["scores"]["dev"][0].contains("roc_auc"));  // graded labels: no binary metrics
  const std::string md = testing::ReadFile(dir / "report.md");
  for (const char* s : {"Table 1", "Table 2", "Table 3", "0.3498", "GloVe 6B 50d",
                        "tiny test model", "Qualitative table", "no such layer"}) {
    EXPECT_NE(md.find(s), std::string::npos) << s;
  }
  if (std::filesystem::exists(dir / "plots/mrpc-layers.svg")) {
    EXPECT_NE(md.find("plots/mrpc-layers.svg"), std::string::npos);
  }
  // Every output went through <file>.partial + rename; none is left behind.
  for (const auto& e : std::filesystem::recursive_directory_iterator(out)) {
    EXPECT_FALSE(e.path().string().ends_with(".partial")) << e.path();
  }
}

// ---- eval --pairs FILE: any pair file, same metrics and report path as MRPC / STS-B ------------

struct Row {
  std::string s1, s2, label;
};

// The first `n` rows of a shared MRPC (label, sentences in columns 0, 3, 4) or STS-B (4, 5, 6)
// file.
std::vector<Row> SharedRows(const std::filesystem::path& file, bool mrpc, int n) {
  std::ifstream in(file, std::ios::binary);
  std::string line;
  std::vector<Row> rows;
  if (mrpc) std::getline(in, line);  // header
  while (static_cast<int>(rows.size()) < n && std::getline(in, line)) {
    std::vector<std::string> f;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      f.push_back(line.substr(start, tab - start));
    }
    f.push_back(line.substr(start));
    rows.push_back(mrpc ? Row{f[3], f[4], f[0]} : Row{f[5], f[6], f[4]});
  }
  return rows;
}

std::string CsvField(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The rows as TSV (columns in a different order, plus an id), CSV (RFC 4180 quoting) and JSONL.
std::vector<std::filesystem::path> WritePairFiles(const std::vector<Row>& rows,
                                                  const std::filesystem::path& dir,
                                                  const std::string& stem) {
  std::ofstream tsv(dir / (stem + ".tsv"), std::ios::binary);
  std::ofstream csv(dir / (stem + ".csv"), std::ios::binary);
  std::ofstream jsonl(dir / (stem + ".jsonl"), std::ios::binary);
  tsv << "label\tid\tsentence1\tsentence2\n";
  csv << "sentence1,sentence2,label\r\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    tsv << r.label << "\tp" << i << "\t" << r.s1 << "\t" << r.s2 << "\n";
    csv << CsvField(r.s1) << "," << CsvField(r.s2) << "," << r.label << "\r\n";
    jsonl << json{{"sentence1", r.s1}, {"sentence2", r.s2}, {"label", std::stod(r.label)}}.dump()
          << "\n";
  }
  return {dir / (stem + ".tsv"), dir / (stem + ".csv"), dir / (stem + ".jsonl")};
}

TEST(CliEvalPairs, TsvCsvJsonlScoreLikeTheTaskReaders) {
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto dir = testing::TempDir();
  const auto shared_data = data.parent_path().parent_path();
  const auto data_dir = SmallData(dir);
  const std::vector<std::string> common = {"--glove", glove.string(), "--bootstrap", "100"};
  struct Case {
    std::string task, label_type;
    bool binary;
    std::vector<Row> rows;
  };
  for (const Case& c :
       {Case{"mrpc", "binary", true, SharedRows(shared_data / "mrpc/dev.tsv", true, 30)},
        Case{"stsb", "score", false, SharedRows(shared_data / "stsb/sts-dev.tsv", false, 20)}}) {
    // The reference: the same pairs read by the task's own reader.
    const auto ref_out = dir / (c.task + "-ref.json");
    auto args = common;
    args.insert(args.begin(),
                {"eval", "--task", c.task, "--split", "dev", "--data-dir", data_dir.string(),
                 "--fit-split", "none", "--output", ref_out.string()});
    auto run = RunCli(args);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const json ref = ReadJson(ref_out)["scores"]["dev"][0];
    ASSERT_EQ(ref["n_pairs"], static_cast<int>(c.rows.size()));
    for (const auto& file : WritePairFiles(c.rows, dir, c.task + "-pairs")) {
      const auto out = dir / (file.filename().string() + ".json");
      args = common;
      args.insert(args.begin(), {"eval", "--pairs", file.string(), "--label-type", c.label_type,
                                 "--output", out.string()});
      run = RunCli(args);
      ASSERT_EQ(run.exit_code, 0) << file << "\n" << run.err;
      const json j = ReadJson(out);
      EXPECT_FALSE(report::HasNonFinite(j));
      EXPECT_EQ(j["task_name"], c.task + "-pairs");
      const json& o = j["scores"][c.task + "-pairs"][0];
      ExpectScoreObject(o, "glove", c.task + "-pairs", static_cast<int>(c.rows.size()), c.binary);
      for (const char* k : {"cosine_spearman", "cosine_pearson", "cosine_spearman_ci"}) {
        EXPECT_EQ(o[k], ref[k]) << file << " " << k;
      }
      if (c.binary) {
        EXPECT_EQ(o["roc_auc"], ref["roc_auc"]) << file;
      }
      EXPECT_EQ(j["settings"]["files"][c.task + "-pairs/" + c.task + "-pairs"], file.string());
      EXPECT_NE(run.out.find("glove"), std::string::npos) << run.out;
    }
  }
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_FALSE(e.path().string().ends_with(".partial")) << e.path();
  }
}

TEST(CliEvalPairs, LabelTypesFitFileModelAndColumnNames) {
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/config.json");
  RWKV_EMBED_REQUIRE_SHARED(dev, "data/mrpc/dev.tsv");
  const auto dir = testing::TempDir();
  const auto rows = SharedRows(dev, true, 40);
  const auto scored = WritePairFiles({rows.begin(), rows.begin() + 25}, dir, "scored");
  const auto fit = WritePairFiles({rows.begin() + 25, rows.end()}, dir, "fit");
  // 0/1 labels read as graded scores: no binary metrics.
  const auto out = dir / "out.json";
  auto run = RunCli({"eval", "--pairs", scored[2].string(), "--label-type", "score", "--glove",
                     glove.string(), "--bootstrap", "0", "--output", out.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ExpectScoreObject(ReadJson(out)["scores"]["scored"][0], "glove", "scored", 25, false);
  // auto: binary; a fit file gives thresholds (accuracy) fitted on it.
  run = RunCli({"eval", "--pairs", scored[0].string(), "--fit-pairs", fit[1].string(), "--glove",
                glove.string(), "--bootstrap", "0", "--subset-seeds", "none", "--output",
                out.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json o = ReadJson(out)["scores"]["scored"][0];
  ExpectScoreObject(o, "glove", "scored", 25, true);
  EXPECT_TRUE(o["accuracy"].is_number()) << o.dump();
  EXPECT_NE(o["threshold_split"].get<std::string>().find("15 pairs"), std::string::npos) << o;
  // Every RWKV layer of the tiny model, on a JSONL file with other key names and an unknown
  // extension.
  {
    std::ofstream f(dir / "renamed.txt");
    for (const Row& r : rows) {
      f << json{{"a", r.s1}, {"b", r.s2}, {"gold", std::stoi(r.label)}}.dump() << "\n";
    }
  }
  run = RunCli({"eval", "--pairs", (dir / "renamed.txt").string(), "--format", "jsonl",
                "--sentence1-column", "a", "--sentence2-column", "b", "--label-column", "gold",
                "--model", model.parent_path().string(), "--bootstrap", "0", "--output",
                out.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json layers = ReadJson(out)["scores"]["renamed"];
  ASSERT_EQ(layers.size(), 5u);
  for (const json& l : layers) ExpectScoreObject(l, "rwkv", "renamed", 40, true);
  // --pairs and --task exclude each other; one of them is needed.
  run = RunCli({"eval", "--pairs", scored[0].string(), "--task", "mrpc", "--glove", glove.string(),
                "--output", out.string()});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  run = RunCli({"eval", "--glove", glove.string(), "--output", out.string()});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("--pairs FILE"), std::string::npos) << run.err;
}

TEST(CliEvalPairs, MalformedFilesNameFileAndLine) {
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  const auto dir = testing::TempDir();
  const std::string tsv_head = "sentence1\tsentence2\tlabel\n", good_tsv = "a cat\ta dog\t1\n";
  const std::string csv_head = "sentence1,sentence2,label\n", good_csv = "a cat,\"a, dog\",0\n";
  const std::string good_jsonl = R"({"sentence1": "a cat", "sentence2": "a dog", "label": 1})"
                                 "\n";
  struct Case {
    std::string name, content;
    int exit_code, line;
    std::string needle;
    std::vector<std::string> extra = {};
  };
  const std::vector<Case> cases = {
      {"columns.tsv", tsv_head + good_tsv + good_tsv + "only\ttwo\n", 4, 4, "columns"},
      {"quote.csv", csv_head + good_csv + "\"open,b,1\n", 4, 3, "never closes"},
      {"overflow.jsonl", good_jsonl + R"({"sentence1": "a", "sentence2": "b", "label": 1e400})", 4,
       2, "number out of range"},
      {"syntax.jsonl", good_jsonl + good_jsonl + "{oops\n", 4, 3, "invalid JSON"},
      {"label.tsv", tsv_head + good_tsv + "a\tb\tmaybe\n", 6, 3, "not a finite number"},
      {"binary.csv",
       csv_head + good_csv + "a,b,0.5\n",
       6,
       3,
       "is not 0 or 1",
       {"--label-type", "binary"}},
      {"empty.jsonl", good_jsonl + R"({"sentence1": " ", "sentence2": "b", "label": 0})", 6, 2,
       "is empty"},
  };
  const auto out = dir / "out.json";
  for (const Case& c : cases) {
    const auto path = dir / c.name;
    std::ofstream(path, std::ios::binary) << c.content;
    std::vector<std::string> args = {"eval",         "--pairs",  path.string(), "--glove",
                                     glove.string(), "--output", out.string()};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const auto run = RunCli(args);
    EXPECT_EQ(run.exit_code, c.exit_code) << c.name << "\n" << run.err;
    EXPECT_NE(run.err.find(path.string() + ":" + std::to_string(c.line) + ":"), std::string::npos)
        << c.name << ": " << run.err;
    EXPECT_NE(run.err.find(c.needle), std::string::npos) << c.name << ": " << run.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.name;
  }
  // --skip-malformed skips (and reports) the bad rows of the JSONL with 1e400.
  const auto path = dir / "skip.jsonl";
  std::ofstream(path, std::ios::binary)
      << good_jsonl << R"({"sentence1": "x", "sentence2": "y", "label": 1e400})"
      << "\n"
      << R"({"sentence1": "a bird", "sentence2": "a dog", "label": 0})"
      << "\n";
  const auto run = RunCli({"eval", "--pairs", path.string(), "--skip-malformed", "--glove",
                           glove.string(), "--bootstrap", "0", "--output", out.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json j = ReadJson(out);
  EXPECT_EQ(j["scores"]["skip"][0]["n_pairs"], 2);
  bool noted = false;
  for (const json& n : j["notes"]) {
    noted |= n.get<std::string>().find("1 malformed rows of " + path.string()) != std::string::npos;
  }
  EXPECT_TRUE(noted) << j["notes"].dump();
}

}  // namespace
}  // namespace rwkv_embed
