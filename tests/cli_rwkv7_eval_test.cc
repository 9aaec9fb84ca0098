// End-to-end tests of eval / reproduce / init-model / info on RWKV-7: every shared RWKV-7 folder
// (fla F32, authors' BF16, the byte-level rwkv.cpp model with --tokenizer bytes), layer labels
// and HF indices taken from each model, the random-weights control of an RWKV-7 model, and an
// RWKV-6 and an RWKV-7 model side by side in one report.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
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

// Score objects of one split by (method, layer); null for one that is missing.
class ByMethodAndLayer {
 public:
  explicit ByMethodAndLayer(const json& scores) {
    for (const json& o : scores) map_[{o["method"].get<std::string>(), o["layer"].get<int>()}] = o;
  }
  json operator()(const std::string& method, int layer) const {
    const auto it = map_.find({method, layer});
    return it == map_.end() ? json() : it->second;
  }
  size_t size() const { return map_.size(); }
  std::set<std::string> methods() const {
    std::set<std::string> out;
    for (const auto& entry : map_) out.insert(entry.first.first);
    return out;
  }
  std::vector<json> all() const {
    std::vector<json> out;
    for (const auto& entry : map_) out.push_back(entry.second);
    return out;
  }

 private:
  std::map<std::pair<std::string, int>, json> map_;
};

TEST(CliEvalRwkv7, EveryLayerLabelledWithItsHfIndexAndARandomControl) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv7-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto scratch = testing::TempDir();
  const auto out = scratch / "r7.json";
  const auto run = RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir",
                           testing::SmallData(scratch).string(), "--model",
                           model.parent_path().string(), "--random-control", "--bootstrap", "20",
                           "--subset-size", "20", "--output", out.string(), "--threads", "2"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json j = ReadJson(out);
  EXPECT_FALSE(report::HasNonFinite(j));
  const ByMethodAndLayer by(j["scores"]["dev"]);
  ASSERT_EQ(by.size(), 8u);  // layers 0..3 of a 2-block model, model and control
  for (const char* method : {"rwkv", "random-control"}) {
    // fla's output_hidden_states: [1] = our 1, [2] = our 3 (after ln_out); ours 0 and 2 absent.
    const json l0 = by(method, 0);
    const json l2 = by(method, 2);
    EXPECT_TRUE(l0["hf_layer"].is_null());
    EXPECT_NE(l0["null_reasons"]["hf_layer"].get<std::string>().find("pre_norm"),
              std::string::npos);
    EXPECT_TRUE(l2["hf_layer"].is_null());
    EXPECT_NE(l2["null_reasons"]["hf_layer"].get<std::string>().find("RWKV-7"), std::string::npos);
    EXPECT_EQ(by(method, 1)["hf_layer"], 1);
    EXPECT_EQ(by(method, 3)["hf_layer"], 2);
    EXPECT_EQ(l0["layer_label"], "after pre_norm");
    EXPECT_EQ(by(method, 1)["layer_label"], "block 1");
    EXPECT_EQ(by(method, 3)["layer_label"], "after ln_out");
    for (const json& o : by.all()) EXPECT_TRUE(o["cosine_spearman"].is_number()) << o.dump();
  }
  // The control is an RWKV-7 of the same shape and naming, with other weights.
  EXPECT_NE(by("rwkv", 3)["cosine_spearman"], by("random-control", 3)["cosine_spearman"]);
  ASSERT_EQ(j["methods"].size(), 2u);
  EXPECT_EQ(j["methods"][1]["control_of"], "rwkv");
  const std::string desc = j["methods"][1]["description"];
  EXPECT_NE(desc.find("RWKV-7"), std::string::npos) << desc;
  EXPECT_NE(desc.find("fla/HF names"), std::string::npos) << desc;
  EXPECT_NE(desc.find("random weights (init-model"), std::string::npos) << desc;
  bool vs_random = false;
  for (const json& c : j["comparisons"]) {
    vs_random |= c["kind"] == "vs_random" && c["method_b"] == "random-control";
  }
  EXPECT_TRUE(vs_random);
  // --hf-index reads the layers in RWKV-7's numbering: HF 2 is our layer 3.
  const auto out2 = scratch / "hf.json";
  const auto run2 =
      RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir", (scratch / "data").string(),
              "--model", model.parent_path().string(), "--layers", "2", "--hf-index", "--bootstrap",
              "0", "--fit-split", "none", "--output", out2.string()});
  ASSERT_EQ(run2.exit_code, 0) << run2.err;
  const json j2 = ReadJson(out2);
  ASSERT_EQ(j2["scores"]["dev"].size(), 1u);
  EXPECT_EQ(j2["scores"]["dev"][0]["layer"], 3);
  EXPECT_EQ(j2["scores"]["dev"][0]["cosine_spearman"], by("rwkv", 3)["cosine_spearman"]);
}

TEST(CliEvalRwkv7, AuthorsBf16AndTheByteLevelModel) {
  RWKV_EMBED_REQUIRE_SHARED(bf16, "models/tiny-rwkv7-bf16/model.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(bytes, "models/rwkv.cpp-tiny-rwkv7/model.pth");
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto scratch = testing::TempDir();
  const auto data_dir = testing::SmallData(scratch).string();
  auto eval = [&](const std::string& model, const std::string& name,
                  std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "eval",       "--task",      "stsb",    "--split",  "dev",
        "--data-dir", data_dir,      "--model", model,      "--bootstrap",
        "20",         "--fit-split", "none",    "--output", (scratch / name).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  };
  auto run = eval(bf16.parent_path().string(), "bf16.json", {});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json j = ReadJson(scratch / "bf16.json");
  EXPECT_EQ(j["scores"]["dev"].size(), 5u);  // 3 blocks
  EXPECT_TRUE(j["scores"]["dev"][3]["hf_layer"].is_null());
  EXPECT_EQ(j["scores"]["dev"][4]["hf_layer"], 3);
  EXPECT_NE(j["methods"][0]["description"].get<std::string>().find("authors'"), std::string::npos);

  // The rwkv.cpp model's vocabulary is bytes: no World vocabulary beside it, and the World
  // vocabulary does not fit its 256 embeddings...
  run = eval(bytes.string(), "w.json", {});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("--tokenizer bytes"), std::string::npos) << run.err;
  run = eval(bytes.string(), "w.json", {"--vocab", vocab.string()});
  EXPECT_EQ(run.exit_code, 5) << run.err;
  EXPECT_NE(run.err.find("only 256"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(scratch / "w.json"));
  // ...and --tokenizer bytes, as for embed, makes it work (a .pth file given directly).
  run = eval(bytes.string(), "bytes.json", {"--tokenizer", "bytes", "--layers", "final"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  j = ReadJson(scratch / "bytes.json");
  EXPECT_FALSE(report::HasNonFinite(j));
  ASSERT_EQ(j["scores"]["dev"].size(), 1u);
  EXPECT_EQ(j["scores"]["dev"][0]["layer"], 13);
  EXPECT_EQ(j["scores"]["dev"][0]["hf_layer"], 12);
  EXPECT_TRUE(j["scores"]["dev"][0]["cosine_spearman"].is_number());
  // One token per UTF-8 byte: at least as many tokens as the World tokenizer gives.
  const json world = ReadJson(scratch / "bf16.json");
  EXPECT_GT(j["costs"][0]["splits"][0]["tokens"].get<int64_t>(),
            world["costs"][0]["splits"][0]["tokens"].get<int64_t>());
  run = eval(bytes.string(), "x.json", {"--tokenizer", "bytes", "--vocab", vocab.string()});
  EXPECT_EQ(run.exit_code, 2);
  run = eval(bytes.string(), "x.json", {"--tokenizer", "bpe"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--tokenizer"), std::string::npos) << run.err;
}

TEST(CliReproduceRwkv7, Rwkv6AndRwkv7SideBySideInOneReport) {
  RWKV_EMBED_REQUIRE_SHARED(six, "models/tiny-rwkv6-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(seven, "models/tiny-rwkv7-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  const auto scratch = testing::TempDir();
  const auto out = scratch / "results";
  const auto run = RunCli({"reproduce",
                           "--model",
                           six.parent_path().string(),
                           "--model",
                           seven.parent_path().string(),
                           "--glove",
                           glove.string(),
                           "--data-dir",
                           testing::SmallData(scratch).string(),
                           "--out",
                           out.string(),
                           "--tasks",
                           "mrpc",
                           "--no-sif",
                           "--train-subset",
                           "20",
                           "--subset-size",
                           "15",
                           "--subset-seeds",
                           "0-1",
                           "--bootstrap",
                           "20",
                           "--threads",
                           "2"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto dir = out / "tiny-rwkv6-f32+tiny-rwkv7-f32";
  const json mrpc = ReadJson(dir / "mrpc.json");
  EXPECT_FALSE(report::HasNonFinite(mrpc));
  const std::string m6 = "rwkv:tiny-rwkv6-f32", m7 = "rwkv:tiny-rwkv7-f32";
  const std::string c6 = "random-control:tiny-rwkv6-f32", c7 = "random-control:tiny-rwkv7-f32";
  for (const char* split : {"train-20", "dev", "test"}) {
    const ByMethodAndLayer by(mrpc["scores"][split]);
    EXPECT_EQ(by.methods(), (std::set<std::string>{"glove", m6, m7, c6, c7})) << split;
    ASSERT_EQ(by.size(), 1u + 4 * 4) << split;  // both models have 2 blocks: layers 0..3
    // Same layer numbers, different HF indices: our layer 2 is HF 1 in RWKV-6 and absent in
    // RWKV-7; our 1 is HF 0 and HF 1.
    EXPECT_EQ(by(m6, 2)["hf_layer"], 1);
    EXPECT_TRUE(by(m7, 2)["hf_layer"].is_null());
    EXPECT_EQ(by(m6, 1)["hf_layer"], 0);
    EXPECT_EQ(by(m7, 1)["hf_layer"], 1);
    EXPECT_EQ(by(m6, 0)["layer_label"], "after pre_ln");
    EXPECT_EQ(by(m7, 0)["layer_label"], "after pre_norm");
    EXPECT_EQ(by(c7, 3)["hf_layer"], 2);
  }
  // Each model is compared with its own control, never with the other's.
  std::set<std::pair<std::string, std::string>> vs_random;
  for (const json& c : mrpc["comparisons"]) {
    if (c["kind"] == "vs_random") {
      vs_random.insert({c["method_a"].get<std::string>(), c["method_b"].get<std::string>()});
    }
  }
  EXPECT_EQ(vs_random, (std::set<std::pair<std::string, std::string>>{{m6, c6}, {m7, c7}}));
  const std::string md = testing::ReadFile(dir / "report.md");
  for (const std::string& s :
       {"| " + m6 + " HF layer 1 (ours 2) |", "| " + m7 + " HF layer 1 (ours 1) |",
        "| " + m6 + " (all layers, one pass) |", "| " + m7 + " (all layers, one pass) |",
        std::string("Model used: ") + m7 + " = RWKV-7 model",
        std::string("Model used: ") + m6 + " = RWKV-6 model"}) {
    EXPECT_NE(md.find(s), std::string::npos) << s;
  }
}

TEST(CliInitModelRwkv7, GooseTinyRoundTripsThroughInfoAndEmbed) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  const auto scratch = testing::TempDir();
  std::map<std::string, std::string> infos;
  for (const std::string names : {"authors", "fla"}) {
    const auto dir = scratch / names;
    auto run = RunCli({"init-model", "--preset", "goose-tiny", "--names", names, "--dtype", "f32",
                       "--seed", "5", "--vocab", vocab.string(), "--out", dir.string()});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    run = RunCli({"info", "--model", dir.string(), "--check-weights"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.out.find("RWKV-7 3 layers, C=128, heads=2x64, F=512, LoRA w/a/v/g 32/32/32/64"),
              std::string::npos)
        << run.out;
    EXPECT_NE(run.out.find(names == "fla" ? "fla/HF names" : "authors' RWKV-LM names"),
              std::string::npos)
        << run.out;
    EXPECT_NE(run.out.find("[RANDOM WEIGHTS]"), std::string::npos);
    // The RWKV-7 layer numbering, with the layers HF's tuple lacks.
    EXPECT_NE(run.out.find("3 (not in HF hidden_states)"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("4 (after ln_out) (HF hidden_states[3])"), std::string::npos);
    // One forced GEMM path: two processes measuring on their own may choose different paths,
    // which round differently.
    run = RunCli({"embed", "--model", dir.string(), "--layers", "all", "--gemm-path", "portable",
                  "--output", (scratch / (names + ".jsonl")).string()},
                 "A cat.\nTwo dogs ran home.\n");
    ASSERT_EQ(run.exit_code, 0) << run.err;
    std::ifstream in(scratch / (names + ".jsonl"));
    infos[names] = std::string((std::istreambuf_iterator<char>(in)), {});
  }
  // One seed, the same model in both namings (head size 64: the same GroupNorm eps).
  EXPECT_EQ(infos["authors"], infos["fla"]);
  EXPECT_FALSE(infos["fla"].empty());
  // --arch rwkv7 with "tiny" is goose-tiny; RWKV-7 has no f16 and no shards.
  auto run = RunCli({"init-model", "--arch", "rwkv7", "--preset", "tiny", "--vocab-size", "300",
                     "--out", (scratch / "t").string()});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  run = RunCli({"init-model", "--preset", "goose-tiny", "--dtype", "f16", "--out",
                (scratch / "u").string()});
  EXPECT_EQ(run.exit_code, 2);
  run = RunCli(
      {"init-model", "--preset", "goose-7b", "--arch", "rwkv7", "--out", (scratch / "v").string()});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("goose-2.9b"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace rwkv_embed
