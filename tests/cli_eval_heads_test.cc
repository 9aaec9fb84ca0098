// `eval --heads`: an EmbeddingRWKV checkpoint's task heads scored beside its backbone layers, each
// exactly as the EmbeddingRwkvEmbedder itself scores through the evaluator (same GEMM path, same
// arithmetic: the Spearman in the JSON is the same double).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/pairs.h"
#include "eval/evaluator.h"
#include "kernels/gemm.h"
#include "model/embedding_rwkv/embedding_rwkv_embedder.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using json = nlohmann::json;
using testing::CliPath;
using testing::RunCli;
using testing::SharedDir;
using testing::TempDir;

// The dev Spearman of `method` (layer 0) in an eval results JSON; NaN when absent.
double DevSpearman(const json& results, const std::string& method) {
  for (const json& s : results.at("scores").at("dev")) {
    if (s.at("method") == method && s.at("layer") == 0)
      return s.at("cosine_spearman").get<double>();
  }
  return std::nan("");
}

TEST(CliEvalHeads, EachHeadScoresAsTheEmbeddingRwkvEmbedderDoes) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-embrwkv-bf16/model.pth");
  RWKV_EMBED_REQUIRE_SHARED(dev_file, "data/mrpc/dev.tsv");
  const auto dir = TempDir();
  const auto out = dir / "eval.json";
  const auto r = RunCli(
      {"eval",     "--model",        model.string(), "--data-dir",  (SharedDir() / "data").string(),
       "--task",   "mrpc",           "--split",      "dev",         "--bootstrap",
       "0",        "--subset-seeds", "none",         "--fit-split", "none",
       "--heads",  "sts,retr",       "--eos-mode",   "eval",        "--gemm-path",
       "portable", "--output",       out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out);
  const json results = json::parse(in);
  EXPECT_EQ(results.at("settings").at("embedding_rwkv_heads"), json({"sts", "retr"}));

  kernels::ForceGemmPath(kernels::GemmPath::kPortable);
  const PairDataset dev = LoadTask("mrpc", "dev", SharedDir() / "data");
  for (const auto& [name, head] :
       {std::pair{"sts", EmbeddingRwkvHead::kSts}, std::pair{"retr", EmbeddingRwkvHead::kRetr}}) {
    EmbeddingRwkvOptions eo;
    eo.head = head;
    auto e = EmbeddingRwkvEmbedder::Load(model, {}, {}, eo);
    eval::EvalInputs inputs;
    inputs.splits = {dev};
    eval::EvalOptions opts;
    opts.bootstrap = 0;
    const eval::MethodResult direct = eval::EvaluateMethod(*e, inputs, opts);
    const double want = direct.splits.at(0).layers.at(0).spearman;
    EXPECT_EQ(DevSpearman(results, std::string("rwkv/head-") + name), want) << name;
  }
  kernels::ForceGemmPath(kernels::GemmPath::kAuto);
  // The heads differ from each other and from the backbone's last layer: three real methods.
  EXPECT_NE(DevSpearman(results, "rwkv/head-sts"), DevSpearman(results, "rwkv/head-retr"));
}

TEST(CliEvalHeads, HeadsNeedAnEmbeddingRwkvCheckpointAndAKnownName) {
  RWKV_EMBED_REQUIRE_SHARED(plain, "models/tiny-rwkv6-f32/model.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(emb, "models/tiny-embrwkv-bf16/model.pth");
  const auto dir = TempDir();
  const std::string data = (SharedDir() / "data").string();
  const auto none =
      RunCli({"eval", "--model", plain.parent_path().string(), "--data-dir", data, "--task", "mrpc",
              "--split", "dev", "--heads", "sts", "--output", (dir / "a.json").string()});
  EXPECT_EQ(none.exit_code, 2) << none.err;
  EXPECT_NE(none.err.find("EmbeddingRWKV checkpoint"), std::string::npos) << none.err;
  const auto bad =
      RunCli({"eval", "--model", emb.string(), "--data-dir", data, "--task", "mrpc", "--split",
              "dev", "--heads", "sts,nope", "--output", (dir / "b.json").string()});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("nope"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "a.json") || std::filesystem::exists(dir / "b.json"));
}

}  // namespace
}  // namespace rwkv_embed
