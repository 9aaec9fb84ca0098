// End to end: a NaN/Inf weight (not caught up front without --check-weights) makes `embed`,
// `eval` and `reproduce` fail with exit code 7 at the first bad batch, naming the sentence (and
// its input line), the layer and the first non-finite weight; nothing is written and a previous
// output stays intact.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {
namespace {

using testing::ReadFile;
using testing::RunCli;

void ExpectContains(const std::string& text, const std::vector<std::string>& parts) {
  for (const std::string& part : parts) {
    EXPECT_NE(text.find(part), std::string::npos) << "missing: " << part << "\n" << text;
  }
}

struct Poison {
  std::string tensor;
  int64_t element;
  float value;
  std::string requested_layer, first_layer;  // with --layers final
};

TEST(CliNumericTest, EmbedFailsWithExit7AndKeepsThePreviousOutput) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<Poison> cases = {
      {"rwkv.blocks.0.attention.key.weight", 17, nan, "layer 3 (after ln_out)",
       "layer 1 (block 1)"},
      {"rwkv.blocks.1.feed_forward.value.weight", 130, inf, "layer 3 (after ln_out)",
       "layer 2 (block 2)"},
      {"rwkv.ln_out.bias", 9, nan, "layer 3 (after ln_out)", "layer 3 (after ln_out)"},
  };
  const auto tmp = testing::TempDir();
  {
    std::ofstream in(tmp / "in.txt");
    in << "The first sentence.\nA second one, a little longer than the first.\nThird.\n";
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    const Poison& c = cases[i];
    SCOPED_TRACE(c.tensor);
    const auto dir = testing::PoisonedModelCopy(
        model.parent_path(), tmp / ("m" + std::to_string(i)), c.tensor, c.element, c.value);
    for (const char* ext : {".npy", ".jsonl"}) {
      const auto out = tmp / (std::string("out") + ext);
      {
        std::ofstream prev(out, std::ios::binary);
        prev << "previous output";
      }
      const auto r = RunCli({"embed", "--model", dir.string(), "--input", (tmp / "in.txt").string(),
                             "--output", out.string(), "--batch-tokens", "8"});
      EXPECT_EQ(r.exit_code, 7) << r.err;
      ExpectContains(r.err,
                     {"non-finite embedding (NaN or Inf) for sentence 0 (line 1 of " +
                          (tmp / "in.txt").string() + ") in " + c.requested_layer,
                      "first turn non-finite at " + c.first_layer, "tensor '" + c.tensor + "'",
                      "at element " + std::to_string(c.element), "forward batch 1,"});
      EXPECT_EQ(ReadFile(out), "previous output");
      EXPECT_FALSE(std::filesystem::exists(tmp / (std::string("out") + ext + ".partial")));
    }
  }
}

// The bad value sits in the embedding row of a token that only line 4 uses, and line 4 is in the
// second chunk of sentences: the error names sentence 3 and line 4; no file is left behind.
TEST(CliNumericTest, EmbedNamesTheLineOfALaterSentence) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const auto tok = WorldTokenizer::FromModelDir(model.parent_path());
  const int32_t id = tok.Encode(" xylophone")[0];
  const std::vector<std::string> lines = {"One line.", "Another line.", "A third line.",
                                          "The xylophone line.", "Last."};
  const auto tmp = testing::TempDir();
  {
    std::ofstream in(tmp / "in.txt");
    for (const auto& l : lines) in << l << "\n";
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto ids = tok.Encode(lines[i]);
    ASSERT_EQ(std::find(ids.begin(), ids.end(), id) != ids.end(), i == 3) << lines[i];
  }
  const int64_t C = 64;
  const auto dir =
      testing::PoisonedModelCopy(model.parent_path(), tmp / "m", "rwkv.embeddings.weight",
                                 id * C + 3, -std::numeric_limits<float>::infinity());
  const auto out = tmp / "out.jsonl";
  const auto r =
      RunCli({"embed", "--model", dir.string(), "--input", (tmp / "in.txt").string(), "--output",
              out.string(), "--layers", "0,2", "--pooling", "max", "--chunk-sentences", "2"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  ExpectContains(r.err,
                 {"for sentence 3 (line 4 of " + (tmp / "in.txt").string() +
                      ") in layer 0 (embeddings after pre_ln)",
                  "tensor 'rwkv.embeddings.weight'", "at element " + std::to_string(id * C + 3)});
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(tmp / "out.jsonl.partial"));
}

// eval embeds the fitting split (all of MRPC train, 3668 pairs) first: it must stop in its first
// batch, not after embedding the split.
TEST(CliNumericTest, EvalAndReproduceStopAtTheFirstBadBatch) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(data, "data/mrpc/train.tsv");
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  const auto tmp = testing::TempDir();
  const auto dir = testing::PoisonedModelCopy(model.parent_path(), tmp / "m", "rwkv.ln_out.bias", 0,
                                              std::numeric_limits<float>::quiet_NaN());
  const std::string data_dir = data.parent_path().parent_path().string();
  const auto out = tmp / "eval.json";
  auto r = RunCli({"eval", "--task", "mrpc", "--split", "dev", "--data-dir", data_dir, "--model",
                   dir.string(), "--layers", "all", "--batch-tokens", "256", "--output",
                   out.string(), "--bootstrap", "0"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  ExpectContains(
      r.err, {"for sentence 0 of mrpc train (sentence1 of pair 0, id ", "in layer 3 (after ln_out)",
              "tensor 'rwkv.ln_out.bias'", "at element 0", "forward batch 1,"});
  EXPECT_FALSE(std::filesystem::exists(out));

  r = RunCli({"reproduce", "--model", dir.string(), "--glove", glove.string(), "--data-dir",
              data_dir, "--out", (tmp / "results").string(), "--tasks", "mrpc", "--bootstrap", "0",
              "--no-sif", "--no-random-control", "--batch-tokens", "256"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  ExpectContains(r.err,
                 {"for sentence 0 of mrpc train", "tensor 'rwkv.ln_out.bias'", "forward batch 1,"});
  EXPECT_FALSE(std::filesystem::exists(tmp / "results/m/mrpc.json"));
}

}  // namespace
}  // namespace rwkv_embed
