// `rwkv-embed init-model` against careless use: reusing an output folder, absurd sizes.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/npy.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using testing::ReadFile;
using testing::RunCli;
namespace fs = std::filesystem;

TEST(CliInitModelTest, SecondModelIntoTheSameFolderNeedsForceAndReplacesTheFirst) {
  // Audit finding: --seed 1, then --seed 2 --shards 2 into the same folder left the seed-1
  // model.safetensors beside the new index; `embed` silently used the seed-1 weights.
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  const auto tmp = testing::TempDir();
  const auto m = tmp / "m";
  const auto init = [&](const std::string& seed, const std::string& shards, bool force,
                        const fs::path& out) {
    std::vector<std::string> args = {"init-model", "--seed",       seed,    "--shards",  shards,
                                     "--vocab",    vocab.string(), "--out", out.string()};
    if (force) args.emplace_back("--force");
    return RunCli(args);
  };
  const auto embed = [&](const fs::path& model, const fs::path& out) {
    auto r = RunCli({"embed", "--model", model.string(), "--output", out.string()}, "hi there\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ReadNpyF32(out).data;
  };
  ASSERT_EQ(init("1", "1", false, m).exit_code, 0);
  const std::string seed1 = ReadFile(m / "model.safetensors");

  auto r = init("2", "2", false, m);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(m / "model.safetensors"), seed1);

  r = init("2", "2", true, m);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(m / "model.safetensors"));
  ASSERT_EQ(init("2", "2", false, tmp / "fresh").exit_code, 0);
  EXPECT_EQ(embed(m, tmp / "a.npy"), embed(tmp / "fresh", tmp / "b.npy"));

  // A folder that holds both layouts (as the old init-model left it) is refused by the loader.
  fs::copy_file(tmp / "fresh/model-00001-of-00002.safetensors", m / "model.safetensors");
  r = RunCli({"embed", "--model", m.string(), "--output", (tmp / "c.npy").string()}, "hi\n");
  EXPECT_EQ(r.exit_code, 4) << r.err;  // FormatError
  EXPECT_NE(r.err.find("ambiguous"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("model.safetensors.index.json"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "c.npy"));
}

TEST(CliInitModelTest, AbsurdSizesAreUsageErrorsBeforeAnyWork) {
  // Audit finding: --num-layers 1e11 grew past 9 GB and --vocab-size 1e11 ended in bad_alloc.
  const auto tmp = testing::TempDir();
  struct Case {
    std::vector<std::string> args;
    std::string option;
  };
  const Case cases[] = {
      {{"--num-layers", "100000000000"}, "--num-layers 100000000000"},
      {{"--vocab-size", "100000000000"}, "--vocab-size 100000000000"},
      {{"--preset", "finch-14b", "--num-layers", "60000"}, "--num-layers 60000"},
      {{"--preset", "finch-14b", "--vocab-size", "2000000000"}, "--vocab-size 2000000000"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"init-model", "--out", (tmp / "x").string()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(c.option), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp / "x"));
    // Refused from the sizes alone: a limit, or more memory/disk than there is (24 TiB here).
    EXPECT_TRUE(r.err.find("limit") != std::string::npos ||
                r.err.find("available") != std::string::npos ||
                r.err.find("free at") != std::string::npos)
        << r.err;
  }
}

}  // namespace
}  // namespace rwkv_embed
