// rwkv-embed-mpi embed under mpirun (apps/mpi): bit-identical to plain `rwkv-embed embed` for any
// number of ranks, rank 0's GEMM choices used on every rank, a rank killed mid-run and the rerun
// doing only the missing shards, errors naming the input line. Skipped when MPI was not built.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "core/matrix.h"
#include "kernels/gemm.h"
#include "mpi_test_util.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;

#ifndef RWKV_EMBED_MPI_CLI_PATH
TEST(MpiEmbedTest, NotBuilt) {
  GTEST_SKIP() << "rwkv-embed-mpi was not built (MPI not found, or -DRWKV_EMBED_MPI=OFF) or "
                  "mpiexec was not found (Debian: openmpi-bin): the MPI tests did not run";
}
#else

using testing::AvailableF32GemmPaths;
using testing::ReadFile;
using testing::RunShell;
using testing::ShellQuote;
using testing::ShellRun;
using testing::WithGemmCache;

// The 100 test sentences: a byte order mark, "\r\n" endings, several scripts, no final '\n'.
std::string InputText() {
  const char* words[] = {"the", "quick", "brown", "fox",    "été",       "naïve", "東京",
                         "☃",   "rwkv",  "model", "embeds", "sentences", "over",  "ranks"};
  std::string text = "\xEF\xBB\xBF";
  uint32_t x = 12345;
  for (int line = 0; line < 100; ++line) {
    if (line) text += line % 7 == 0 ? "\r\n" : "\n";
    x = x * 1103515245u + 12345u;
    const int n = 1 + static_cast<int>((x >> 16) % 20);
    for (int w = 0; w < n; ++w) {
      x = x * 1103515245u + 12345u;
      text += std::string(w ? " " : "") + words[(x >> 16) % std::size(words)];
    }
  }
  return text;
}

class MpiEmbedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::SharedFile("models/tiny-rwkv6-f32");
    if (model_.empty()) GTEST_SKIP() << "shared file absent: models/tiny-rwkv6-f32";
    dir_ = testing::TempDir();
    input_ = dir_ / "in.txt";
    std::ofstream(input_, std::ios::binary) << InputText();
  }

  static std::string Mpirun(int ranks) { return testing::MpirunCommand(RWKV_EMBED_MPIEXEC, ranks); }
  std::string EmbedArgs(const fs::path& out, const std::string& extra = "") const {
    return " embed --model " + ShellQuote(model_.string()) + " --input " +
           ShellQuote(input_.string()) + " --output " + ShellQuote(out.string()) +
           " --layers all --threads 1 " + extra;
  }
  // Plain rwkv-embed, GEMM paths from `cache`.
  ShellRun Single(const fs::path& out, const fs::path& cache) const {
    return RunShell(WithGemmCache(cache) + ShellQuote(testing::CliPath().string()) + EmbedArgs(out),
                    dir_);
  }
  ShellRun Mpi(int ranks, const fs::path& out, const fs::path& cache,
               const std::string& extra = "--shard-bytes 97") const {
    return RunShell(WithGemmCache(cache) + Mpirun(ranks) + " " +
                        ShellQuote(RWKV_EMBED_MPI_CLI_PATH) + EmbedArgs(out, extra),
                    dir_);
  }

  // A GEMM cache in dir_/name naming `path` for every weight shape of the model.
  fs::path CacheChoosing(kernels::GemmPath path, const std::string& name) const {
    return testing::GemmCacheChoosing(path, {model_}, dir_ / name);
  }

  fs::path model_, dir_, input_;
};

TEST_F(MpiEmbedTest, BitIdenticalToOneProcessForOneTwoAndThreeRanks) {
  const fs::path cache = CacheChoosing(AvailableF32GemmPaths()[0], "cache");
  const ShellRun single = Single(dir_ / "single.npy", cache);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const std::string want = ReadFile(dir_ / "single.npy");
  for (int ranks : {1, 2, 3}) {
    const fs::path out = dir_ / ("mpi" + std::to_string(ranks) + ".npy");
    const ShellRun r = Mpi(ranks, out, cache);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(ReadFile(out) == want) << ranks << " ranks: output differs from rwkv-embed embed";
    // Nothing left beside the output; the accounting adds up.
    EXPECT_FALSE(fs::exists(out.string() + ".shards.partial"));
    EXPECT_FALSE(fs::exists(out.string() + ".shards.json"));
    const auto run = testing::ReadJson(out.string() + ".run.json");
    EXPECT_EQ(run["ranks"], ranks);
    EXPECT_EQ(run["sentences"], 100);
    EXPECT_GT(run["shards"].get<int>(), 3 * ranks);
    EXPECT_EQ(run["shards_this_run"], run["shards"]);
    EXPECT_EQ(run["per_rank"].size(), static_cast<size_t>(ranks));
    int64_t rows = 0, tokens = 0;
    for (const auto& k : run["per_rank"]) {
      rows += k["sentences"].get<int64_t>();
      tokens += k["tokens"].get<int64_t>();
    }
    EXPECT_EQ(rows, 100);
    EXPECT_EQ(tokens, run["tokens_this_run"].get<int64_t>());
    const std::string single_tokens = " " + std::to_string(tokens) + " tokens";
    EXPECT_NE(single.err.find(single_tokens), std::string::npos)
        << "plain embed counted other tokens: " << single.err;
    EXPECT_GE(run["load_balance_max_over_mean"].get<double>(), 1.0);
    EXPECT_EQ(run["shard_timings"].size(), run["shards"].get<size_t>());
  }
}

// Ranks 1 and 2 read a cache that picks another GEMM path than rank 0's: without rank 0's
// choices installed on every rank, their rows would carry other bits.
TEST_F(MpiEmbedTest, EveryRankMultipliesWithRankZerosGemmChoices) {
  // Path A, and the first other path whose bits differ from A's on this input.
  const auto paths = AvailableF32GemmPaths();
  ASSERT_FALSE(paths.empty());
  const fs::path cache_a = CacheChoosing(paths[0], "cache_a");
  ASSERT_EQ(Single(dir_ / "a.npy", cache_a).exit_code, 0);
  fs::path cache_b;
  for (size_t i = 1; i < paths.size() && cache_b.empty(); ++i) {
    const fs::path cache = CacheChoosing(paths[i], "cache_" + std::to_string(i));
    ASSERT_EQ(Single(dir_ / "b.npy", cache).exit_code, 0);
    if (ReadFile(dir_ / "b.npy") != ReadFile(dir_ / "a.npy")) cache_b = cache;
  }
  if (cache_b.empty()) GTEST_SKIP() << "every GEMM path gives the same bits here: nothing to tell";
  const fs::path out = dir_ / "mixed.npy";
  const std::string rank_args =
      ShellQuote(RWKV_EMBED_MPI_CLI_PATH) + EmbedArgs(out, "--shard-bytes 61");
  const ShellRun r = RunShell(Mpirun(1) + " " + WithGemmCache(cache_a) + rank_args + " : -np 2 " +
                                  WithGemmCache(cache_b) + rank_args,
                              dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ReadFile(out) == ReadFile(dir_ / "a.npy")) << "a rank used its own GEMM choice";
  const auto run = testing::ReadJson(out.string() + ".run.json");
  for (const auto& k : run["per_rank"]) EXPECT_GT(k["shards"].get<int>(), 0) << k.dump();
  for (const auto& g : run["gemm_choices"]) {
    EXPECT_EQ(g["path"], std::string(kernels::GemmPathName(paths[0])));
  }
}

TEST_F(MpiEmbedTest, ARankKilledMidRunLosesNothingAndTheRerunDoesOnlyTheMissingShards) {
  const fs::path cache = CacheChoosing(AvailableF32GemmPaths()[0], "cache");
  ASSERT_EQ(Single(dir_ / "single.npy", cache).exit_code, 0);
  const fs::path out = dir_ / "out.npy";
  const std::string data = out.string() + ".shards.partial",
                    manifest = out.string() + ".shards.json";
  // Rank 1 dies (SIGKILL) once rank 0 has recorded its first shard; mpirun ends the job.
  const ShellRun killed =
      RunShell("env RWKV_EMBED_MPI_TEST_KILL=1:1 " + WithGemmCache(cache) + Mpirun(3) + " " +
                   ShellQuote(RWKV_EMBED_MPI_CLI_PATH) + EmbedArgs(out, "--shard-bytes 23"),
               dir_);
  EXPECT_NE(killed.exit_code, 0) << killed.err;
  EXPECT_FALSE(fs::exists(out)) << "an interrupted run left a file under the final name";
  ASSERT_TRUE(fs::exists(data));
  ASSERT_TRUE(fs::exists(manifest));
  const std::string done = testing::ReadJson(manifest)["done"];
  const auto finished = std::count(done.begin(), done.end(), '1');
  EXPECT_GE(finished, 1) << done;
  EXPECT_LT(finished, static_cast<int64_t>(done.size())) << "nothing was left to resume";

  // Another option than the interrupted run's: refused, the partial work kept.
  const ShellRun other = Mpi(2, out, cache, "--pooling max");
  EXPECT_EQ(other.exit_code, 2) << other.err;
  EXPECT_NE(other.err.find("interrupted run"), std::string::npos) << other.err;
  EXPECT_TRUE(fs::exists(data) && fs::exists(manifest));

  // The rerun (two ranks, other shard-size option: the manifest's plan wins) finishes the job.
  const ShellRun rerun = Mpi(2, out, cache);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  EXPECT_TRUE(ReadFile(out) == ReadFile(dir_ / "single.npy")) << "resumed output differs";
  EXPECT_FALSE(fs::exists(data));
  EXPECT_FALSE(fs::exists(manifest));
  const auto run = testing::ReadJson(out.string() + ".run.json");
  EXPECT_EQ(run["shards"].get<int64_t>(), static_cast<int64_t>(done.size()));
  EXPECT_EQ(run["shards_this_run"].get<int64_t>(), static_cast<int64_t>(done.size()) - finished);
  EXPECT_TRUE(run["resumed"].get<bool>());
}

// RWKV-7 and an EmbeddingRWKV checkpoint (its task head's embedding) shard the same way; one forced
// GEMM path here (the autotuned case is covered above).
TEST_F(MpiEmbedTest, OtherArchitecturesAreBitIdenticalToo) {
  const std::string path = std::string(kernels::GemmPathName(AvailableF32GemmPaths()[0]));
  for (const std::string model : {"models/tiny-rwkv7-f32", "models/tiny-embrwkv-bf16/model.pth"}) {
    const fs::path m = testing::SharedFile(model);
    if (m.empty()) {
      ADD_FAILURE() << "shared file absent: " << model;
      continue;
    }
    const std::string args = " embed --model " + ShellQuote(m.string()) + " --input " +
                             ShellQuote(input_.string()) + " --threads 1 --gemm-path " + path;
    const fs::path single = dir_ / "single.npy", mpi = dir_ / "mpi.npy";
    const ShellRun a = RunShell(
        ShellQuote(testing::CliPath().string()) + args + " --output " + ShellQuote(single.string()),
        dir_);
    ASSERT_EQ(a.exit_code, 0) << model << ": " << a.err;
    const ShellRun b = RunShell(Mpirun(2) + " " + ShellQuote(RWKV_EMBED_MPI_CLI_PATH) + args +
                                    " --shard-bytes 150 --output " + ShellQuote(mpi.string()),
                                dir_);
    ASSERT_EQ(b.exit_code, 0) << model << ": " << b.err;
    EXPECT_TRUE(ReadFile(single) == ReadFile(mpi))
        << model << ": 2 ranks differ from rwkv-embed embed";
  }
}

TEST_F(MpiEmbedTest, ABadLineIsNamedAsByPlainEmbedAndEndsTheJob) {
  std::string text = InputText();
  const size_t at = text.find('\n', text.size() / 2);
  text.insert(at, "\n");  // an empty line in the middle
  std::ofstream(input_, std::ios::binary | std::ios::trunc) << text;
  const fs::path cache = dir_ / "nocache";
  const ShellRun single = Single(dir_ / "single.npy", cache);
  ASSERT_EQ(single.exit_code, 6) << single.err;
  const auto line = single.err.substr(single.err.find("in.txt line "));
  const std::string named = line.substr(0, line.find(" is empty"));
  const ShellRun r = Mpi(3, dir_ / "out.npy", cache, "--shard-bytes 50");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find(named + " is empty"), std::string::npos) << named << "\n" << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out.npy"));
  // stdin cannot be shared between ranks, nor can JSON lines be placed by offset.
  const ShellRun from_stdin =
      RunShell(Mpirun(2) + " " + ShellQuote(RWKV_EMBED_MPI_CLI_PATH) + " embed --model " +
                   ShellQuote(model_.string()) + " --output " +
                   ShellQuote((dir_ / "x.npy").string()) + " </dev/null",
               dir_);
  EXPECT_EQ(from_stdin.exit_code, 2) << from_stdin.err;
  EXPECT_NE(from_stdin.err.find("--input must be a file"), std::string::npos) << from_stdin.err;
}

#endif  // RWKV_EMBED_MPI_CLI_PATH

}  // namespace
}  // namespace rwkv_embed
