// End-to-end tests of ablations in the CLI: `rwkv-embed ablate` (grid and list, JSON fields,
// Δ = 0 with CI (0, 0) for a no-op ablation), `--ablate` on embed, eval and reproduce (recorded,
// said first, and really applied), and clear usage errors for bad specs. On the shared tiny
// models and a few dozen MRPC pairs, so each runs in seconds.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "report/report.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ReadFile;
using testing::ReadJson;
using testing::RunCli;

// A data folder with the first 60 MRPC dev pairs, 40 train and 20 test pairs.
fs::path SmallMrpc(const fs::path& shared_data, const fs::path& scratch) {
  fs::path dir = scratch / "data";
  for (const auto& [file, lines] : {std::pair{"dev.tsv", 61}, std::pair{"train.tsv", 41},
                                    std::pair{"msr_paraphrase_test.txt", 21}}) {
    testing::CopyHead(shared_data / "mrpc" / file, dir / "mrpc" / file, lines);
  }
  return dir;
}

TEST(CliAblate, GridOnRwkv6WritesDeltasAndNoOpIsExactlyZero) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/dev.tsv");
  const fs::path scratch = testing::TempDir();
  const fs::path data_dir = SmallMrpc(data.parent_path().parent_path(), scratch);
  const fs::path out_json = scratch / "ablate.json", out_dir = scratch / "report";
  const auto run =
      RunCli({"ablate", "--model", model.parent_path().string(), "--data-dir", data_dir.string(),
              "--task", "mrpc", "--split", "dev", "--grid", "tmix,decay-scale=1", "--blocks", "1-2",
              "--bootstrap", "200", "--output", out_json.string(), "--out", out_dir.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // The grid size is announced before the run, and progress after each ablation.
  EXPECT_NE(run.err.find("4 ablations (grid 2 switches x 2 blocks) + the intact model"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("[4/4] decay-scale=1:2"), std::string::npos) << run.err;

  const json j = ReadJson(out_json);
  EXPECT_FALSE(report::HasNonFinite(j));
  EXPECT_EQ(j["tool"], "rwkv-embed ablate");
  EXPECT_EQ(j["task"], "mrpc");
  EXPECT_EQ(j["split"], "dev");
  EXPECT_EQ(j["n_pairs"], 60);
  EXPECT_EQ(j["model"]["architecture"], "rwkv6");
  EXPECT_EQ(j["model"]["blocks"], 2);
  EXPECT_EQ(j["grid"]["switches"], json({"skip-tmix", "decay-scale=1"}));
  EXPECT_EQ(j["grid"]["blocks"], json({1, 2}));
  EXPECT_EQ(j["grid"]["layer"], 3);  // the last scored layer
  EXPECT_EQ(j["settings"]["bootstrap_resamples"], 200);
  EXPECT_NE(j["notes"][0].get<std::string>().find("ABLATED"), std::string::npos);
  const json& intact = j["intact"]["layers"];
  ASSERT_EQ(intact.size(), 4u);  // layers 0..L+1
  ASSERT_EQ(j["ablations"].size(), 4u);
  const std::vector<std::string> names = {"skip-tmix:1", "skip-tmix:2", "decay-scale=1:1",
                                          "decay-scale=1:2"};
  for (size_t a = 0; a < names.size(); ++a) {
    const json& r = j["ablations"][a];
    SCOPED_TRACE(names[a]);
    EXPECT_EQ(r["name"], names[a]);
    EXPECT_EQ(r["grid_block"], static_cast<int>(a % 2) + 1);
    ASSERT_EQ(r["layers"].size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      const json& l = r["layers"][i];
      EXPECT_EQ(l["layer"], intact[i]["layer"]);
      // Δ is the ablated minus the intact Spearman, its CI around it.
      EXPECT_DOUBLE_EQ(l["delta"].get<double>(),
                       l["spearman"].get<double>() - intact[i]["spearman"].get<double>());
      EXPECT_LE(l["delta_ci"][0].get<double>(), l["delta"].get<double>());
      EXPECT_GE(l["delta_ci"][1].get<double>(), l["delta"].get<double>());
      const bool no_op = r["switch"] == "decay-scale=1" || static_cast<int>(i) < r["grid_block"];
      if (no_op) {  // decay scale 1, or a layer before the ablated block: exactly the intact model
        EXPECT_EQ(l["delta"], 0.0) << "layer " << i;
        EXPECT_EQ(l["delta_ci"], json({0.0, 0.0})) << "layer " << i;
        EXPECT_EQ(l["p_value"], 1.0) << "layer " << i;
      }
    }
  }
  // Skipping block 1's time mix changes block 1's output.
  EXPECT_NE(j["ablations"][0]["layers"][1]["delta"], 0.0);

  const std::string md = ReadFile(out_dir / "ablation.md");
  for (const char* s :
       {"ABLATED", "random weights", "## Intact model", "skip-tmix:2", "## Grid",
        "| decay-scale=1 | +0.0000 [+0.0000, +0.0000] | +0.0000 [+0.0000, +0.0000] |"}) {
    EXPECT_NE(md.find(s), std::string::npos) << s << "\n" << md;
  }
  for (const char* f : {"plots/ablation-layers.dat", "plots/ablation-layers.gp",
                        "plots/ablation-grid.dat", "plots/ablation-grid.gp"}) {
    EXPECT_TRUE(fs::exists(out_dir / f)) << f;
  }
  if (fs::exists(out_dir / "plots/ablation-layers.svg")) {
    EXPECT_NE(md.find("plots/ablation-layers.svg"), std::string::npos);
  }
  for (const auto& e : fs::recursive_directory_iterator(scratch)) {
    EXPECT_NE(e.path().extension(), ".partial") << e.path();
  }
}

TEST(CliAblate, UserListOnRwkv7HasNoGrid) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv7-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/dev.tsv");
  const fs::path scratch = testing::TempDir();
  const fs::path data_dir = SmallMrpc(data.parent_path().parent_path(), scratch);
  const fs::path out_json = scratch / "ablate.json";
  const auto run =
      RunCli({"ablate", "--model", model.parent_path().string(), "--data-dir", data_dir.string(),
              "--ablate", "zero-bonus:all", "--ablate", "freeze-decay:2", "--layers", "2,3",
              "--bootstrap", "50", "--output", out_json.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json j = ReadJson(out_json);
  EXPECT_TRUE(j["grid"].is_null());
  EXPECT_EQ(j["model"]["architecture"], "rwkv7");
  ASSERT_EQ(j["ablations"].size(), 2u);
  EXPECT_EQ(j["ablations"][0]["name"], "zero-bonus:all");
  EXPECT_EQ(j["ablations"][0]["blocks"], "all");
  EXPECT_EQ(j["ablations"][1]["blocks"], json({2}));
  EXPECT_EQ(j["ablations"][1]["layers"].size(), 2u);
  EXPECT_EQ(j["reference_layer"].get<int>() >= 2, true);
}

TEST(CliAblate, EvalAndReproduceRecordAndApplyTheAblation) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/dev.tsv");
  const fs::path scratch = testing::TempDir();
  const fs::path data_dir = SmallMrpc(data.parent_path().parent_path(), scratch);
  std::vector<std::string> base = testing::EvalMrpcDevArgs(data_dir);
  base.insert(base.end(),
              {"--model", model.parent_path().string(), "--bootstrap", "0", "--fit-split", "none"});
  auto plain = base, ablated = base;
  plain.insert(plain.end(), {"--output", (scratch / "plain.json").string()});
  ablated.insert(ablated.end(),
                 {"--ablate", "skip-cmix:2", "--output", (scratch / "ablated.json").string()});
  ASSERT_EQ(RunCli(plain).exit_code, 0);
  const auto run = RunCli(ablated);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json p = ReadJson(scratch / "plain.json"), a = ReadJson(scratch / "ablated.json");
  EXPECT_EQ(a["settings"]["ablations"], json({"skip-cmix:2"}));
  EXPECT_EQ(p["settings"]["ablations"], json::array());
  EXPECT_NE(a["notes"][0].get<std::string>().find("ABLATED MODEL"), std::string::npos);
  const json& ps = p["scores"]["dev"];
  const json& as = a["scores"]["dev"];
  ASSERT_EQ(ps.size(), 4u);
  ASSERT_EQ(as.size(), 4u);
  for (int l = 0; l < 4; ++l) {  // layers before block 2 are untouched, block 2 on changed
    if (l < 2) {
      EXPECT_EQ(as[l]["main_score"], ps[l]["main_score"]) << l;
    } else {
      EXPECT_NE(as[l]["main_score"], ps[l]["main_score"]) << l;
    }
  }

  const fs::path out = scratch / "results";
  const auto rep = RunCli({"reproduce",
                           "--model",
                           model.parent_path().string(),
                           "--glove",
                           glove.string(),
                           "--data-dir",
                           data_dir.string(),
                           "--out",
                           out.string(),
                           "--tasks",
                           "mrpc",
                           "--train-subset",
                           "20",
                           "--subset-size",
                           "15",
                           "--bootstrap",
                           "20",
                           "--no-sif",
                           "--no-random-control",
                           "--ablate",
                           "decay-scale=0.5:1-2",
                           "--ablate",
                           "zero-bonus:1"});
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  // Its own folder: an ablated run never overwrites the intact model's results.
  const fs::path dir = out / "tiny-rwkv6-f32-ablated-decay-scale=0.5_1-2-zero-bonus_1";
  ASSERT_TRUE(fs::exists(dir)) << rep.out;
  EXPECT_FALSE(fs::exists(out / "tiny-rwkv6-f32"));
  const std::string md = ReadFile(dir / "report.md");
  const size_t first_note = md.find("- **");  // the report's first statement says it
  EXPECT_EQ(md.find("- **ABLATED MODEL", first_note), first_note) << md.substr(0, 600);
  EXPECT_NE(md.find("decay-scale=0.5:1-2 + zero-bonus:1"), std::string::npos);
  const json mrpc = ReadJson(dir / "mrpc.json");
  EXPECT_EQ(mrpc["settings"]["ablations"], json({"decay-scale=0.5:1-2", "zero-bonus:1"}));
}

TEST(CliAblate, EmbedAppliesTheAblationAndSaysSo) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv7-f32/config.json");
  const fs::path scratch = testing::TempDir();
  const std::string text = "A short sentence.\nAnother one, a little longer than the first.\n";
  auto embed = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = {"embed", "--model",  model.parent_path().string(), "--layers",
                                     "all",   "--output", (scratch / name).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args, text);
  };
  ASSERT_EQ(embed("plain.jsonl", {}).exit_code, 0);
  const auto noop = embed("noop.jsonl", {"--ablate", "decay-scale=1:all"});
  ASSERT_EQ(noop.exit_code, 0) << noop.err;
  EXPECT_NE(noop.err.find("ABLATED MODEL: decay-scale=1:all"), std::string::npos) << noop.err;
  const auto skip = embed("skip.jsonl", {"--ablate", "tmix:1"});
  ASSERT_EQ(skip.exit_code, 0) << skip.err;
  EXPECT_EQ(ReadFile(scratch / "noop.jsonl"), ReadFile(scratch / "plain.jsonl"));
  EXPECT_NE(ReadFile(scratch / "skip.jsonl"), ReadFile(scratch / "plain.jsonl"));
}

TEST(CliAblate, BadSpecsAreUsageErrorsNamingThePart) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/dev.tsv");
  const fs::path scratch = testing::TempDir();
  const std::string m = model.parent_path().string();
  const std::string d = data.parent_path().parent_path().string();
  const std::string out = (scratch / "x.json").string();
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const std::vector<Case> cases = {
      {{"embed", "--model", m, "--output", (scratch / "x.npy").string(), "--ablate", "skip:1"},
       "'skip'"},
      {{"eval", "--task", "mrpc", "--split", "dev", "--data-dir", d, "--model", m, "--ablate",
        "skip-tmix:9", "--output", out},
       "block 9 is beyond the model's 2 blocks"},
      {{"eval", "--task", "mrpc", "--split", "dev", "--data-dir", d, "--glove", glove.string(),
        "--ablate", "skip-tmix:1", "--output", out},
       "--ablate needs --model"},
      {{"ablate", "--model", m, "--data-dir", d, "--grid", "tmix", "--blocks", "0", "--output",
        out},
       "1-based"},
      {{"ablate", "--model", m, "--data-dir", d, "--grid", "tmix,warp", "--output", out}, "'warp'"},
      {{"ablate", "--model", m, "--data-dir", d, "--ablate", "cmix:3", "--output", out},
       "block 3 is beyond"},
  };
  for (const Case& c : cases) {
    const auto run = RunCli(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.args[0] << ": " << run.err;
    EXPECT_NE(run.err.find(c.says), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

}  // namespace
}  // namespace rwkv_embed
