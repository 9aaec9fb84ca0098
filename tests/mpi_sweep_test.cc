// rwkv-embed-mpi eval / reproduce / ablate under mpirun (apps/mpi/sweep.cc): the method groups or
// ablation passes dealt over the ranks, gathered on rank 0, written as one process writes them —
// every number identical to plain `rwkv-embed` with the same GEMM paths — plus the sweep's "mpi"
// accounting. Skipped when MPI was not built.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "kernels/gemm.h"
#include "mpi_test_util.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

#ifndef RWKV_EMBED_MPI_CLI_PATH
TEST(MpiSweepTest, NotBuilt) {
  GTEST_SKIP() << "rwkv-embed-mpi was not built (MPI not found, or -DRWKV_EMBED_MPI=OFF) or "
                  "mpiexec was not found (Debian: openmpi-bin): the MPI sweep tests did not run";
}
#else

using testing::AvailableF32GemmPaths;
using testing::ReadJson;
using testing::RunShell;
using testing::ShellQuote;
using testing::ShellRun;
using testing::WithGemmCache;

// What may differ between two runs of the same evaluation: when, how fast, how much memory, the
// command line, the random control's scratch folder (a pid in its name) in its description, and
// the MPI accounting (only a sweep over several ranks has one). Everything else — every score, CI,
// cosine-derived metric, comparison, setting, note — must not.
json Comparable(json j) {
  static const std::vector<std::string> kIgnored = {"started_at",
                                                    "evaluation_time",
                                                    "evaluation_seconds",
                                                    "command_line",
                                                    "load_seconds",
                                                    "peak_rss_mib",
                                                    "embed_seconds",
                                                    "seconds_per_pair",
                                                    "seconds_per_sentence",
                                                    "tokens_per_second",
                                                    "mpi"};
  if (j.is_object()) {
    for (const std::string& k : kIgnored) j.erase(k);
    for (auto& [k, v] : j.items()) v = Comparable(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = Comparable(v);
  } else if (j.is_string()) {
    static const std::regex scratch("from [^ ]*rwkv-embed-random-control-[0-9]+-([0-9]+)/");
    j = std::regex_replace(j.get<std::string>(), scratch, "from SCRATCH-$1/");
  }
  return j;
}

class MpiSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"models/tiny-rwkv6-f32/config.json", "models/tiny-rwkv7-f32/config.json",
                          "vectors/glove.6B.100d.mrpc-stsb.txt", "data/mrpc/train.tsv"}) {
      if (testing::SharedFile(f).empty()) GTEST_SKIP() << "shared file absent: " << f;
    }
    dir_ = testing::TempDir();
    data_ = testing::SmallData(dir_);  // as cli_eval_test: each run takes seconds
  }

  static std::string Mpirun(int ranks) { return testing::MpirunCommand(RWKV_EMBED_MPIEXEC, ranks); }
  static fs::path Model(const std::string& name) {
    return testing::SharedFile("models/" + name + "/config.json").parent_path();
  }
  // Two models (RWKV-6, RWKV-7), GloVe, SIF, random controls: groups 0, 1, 2.
  std::string Methods() const {
    return " --model " + ShellQuote(Model("tiny-rwkv6-f32").string()) + " --model " +
           ShellQuote(Model("tiny-rwkv7-f32").string()) + " --glove " +
           ShellQuote(testing::SharedFile("vectors/glove.6B.100d.mrpc-stsb.txt").string()) +
           " --data-dir " + ShellQuote(data_.string()) +
           " --subset-size 15 --bootstrap 50 --threads 1 ";
  }
  std::string Reproduce(const fs::path& out, const std::string& extra) const {
    return " reproduce" + Methods() + "--train-subset 20 --out " + ShellQuote(out.string()) + " " +
           extra;
  }
  std::string Eval(const fs::path& out, const std::string& extra) const {
    return " eval" + Methods() + "--sif --random-control --task mrpc --split dev --output " +
           ShellQuote(out.string()) + " " + extra;
  }
  static std::string Single() { return ShellQuote(testing::CliPath().string()); }
  static std::string Mpi(int ranks) {
    return Mpirun(ranks) + " " + ShellQuote(RWKV_EMBED_MPI_CLI_PATH);
  }

  // A GEMM cache in dir_/name naming `path` for every weight shape of both models.
  fs::path CacheChoosing(kernels::GemmPath path, const std::string& name) const {
    return testing::GemmCacheChoosing(path, {Model("tiny-rwkv6-f32"), Model("tiny-rwkv7-f32")},
                                      dir_ / name);
  }

  fs::path dir_, data_;
};

// The "mpi" accounting of a sweep over `ranks` ranks whose units are `names` (in unit order):
// every unit once, on a rank of the job; the ranks' units and tokens are the sums of their units';
// the total is the sum of the ranks'; the load balance is max / mean of the ranks' busy time.
// Returns the units' tokens.
std::vector<int64_t> CheckAccounting(const json& mpi, int ranks, const std::string& schedule,
                                     const std::vector<std::string>& names) {
  std::vector<int64_t> unit_tokens;
  EXPECT_EQ(mpi.at("ranks"), ranks);
  EXPECT_EQ(mpi.at("schedule"), schedule);
  const json& units = mpi.at("units");
  EXPECT_EQ(units.size(), names.size()) << units.dump();
  std::vector<int64_t> rank_units(static_cast<size_t>(ranks), 0), rank_tokens(rank_units);
  std::vector<double> rank_busy(static_cast<size_t>(ranks), 0);
  for (size_t i = 0; i < units.size() && i < names.size(); ++i) {
    const json& u = units[i];
    EXPECT_EQ(u.at("name"), names[i]) << units.dump();
    const int rank = u.at("rank").get<int>();
    EXPECT_TRUE(rank >= 0 && rank < ranks) << u.dump();
    if (rank < 0 || rank >= ranks) continue;
    EXPECT_GT(u.at("tokens").get<int64_t>(), 0) << u.dump();
    EXPECT_GT(u.at("seconds").get<double>(), 0) << u.dump();
    EXPECT_LE(u.at("embed_seconds").get<double>(), u.at("seconds").get<double>()) << u.dump();
    ++rank_units[static_cast<size_t>(rank)];
    rank_tokens[static_cast<size_t>(rank)] += u.at("tokens").get<int64_t>();
    rank_busy[static_cast<size_t>(rank)] += u.at("seconds").get<double>();
    unit_tokens.push_back(u.at("tokens").get<int64_t>());
  }
  const json& per_rank = mpi.at("per_rank");
  EXPECT_EQ(per_rank.size(), static_cast<size_t>(ranks));
  int64_t total = 0;
  double busy_max = 0, busy_sum = 0;
  for (size_t k = 0; k < per_rank.size() && k < rank_units.size(); ++k) {
    const json& r = per_rank[k];
    EXPECT_EQ(r.at("rank"), k);
    EXPECT_EQ(r.at("units"), rank_units[k]) << per_rank.dump();
    EXPECT_EQ(r.at("tokens"), rank_tokens[k]) << per_rank.dump();
    EXPECT_DOUBLE_EQ(r.at("busy_seconds").get<double>(), rank_busy[k]);
    total += r.at("tokens").get<int64_t>();
    busy_max = std::max(busy_max, r.at("busy_seconds").get<double>());
    busy_sum += r.at("busy_seconds").get<double>();
  }
  EXPECT_EQ(mpi.at("tokens"), total);
  const double balance = mpi.at("load_balance_max_over_mean").get<double>();
  EXPECT_DOUBLE_EQ(balance, busy_max / (busy_sum / ranks));
  EXPECT_GE(balance, 1.0 - 1e-12);  // max >= mean; 1e-12: the mean's rounding when all are equal
  EXPECT_GT(mpi.at("wall_seconds").get<double>(), 0);
  EXPECT_DOUBLE_EQ(mpi.at("tokens_per_second").get<double>(),
                   static_cast<double>(total) / mpi.at("wall_seconds").get<double>());
  return unit_tokens;
}

// Every token a task JSON's methods embedded on their scored splits (its "costs").
int64_t TokensOf(const json& task) {
  int64_t tokens = 0;
  for (const json& cost : task.at("costs")) {
    for (const json& split : cost.at("splits")) tokens += split.at("tokens").get<int64_t>();
  }
  return tokens;
}

constexpr const char* kRunName = "tiny-rwkv6-f32+tiny-rwkv7-f32";

TEST_F(MpiSweepTest, ReproduceOnTwoAndThreeRanksWritesWhatOneProcessWrites) {
  const std::string gemm =
      "--gemm-path " + std::string(kernels::GemmPathName(AvailableF32GemmPaths()[0]));
  const ShellRun single = RunShell(Single() + Reproduce(dir_ / "single", gemm), dir_);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const fs::path want = dir_ / "single" / kRunName;
  EXPECT_FALSE(ReadJson(want / "mrpc.json").contains("mpi")) << "one process: no MPI accounting";
  // 2 ranks dealt dynamically (who runs what varies), 3 ranks round robin (known).
  for (int ranks : {2, 3}) {
    const fs::path out = dir_ / ("mpi" + std::to_string(ranks));
    const std::string schedule = ranks == 3 ? " --schedule round-robin" : "";
    const ShellRun r = RunShell(Mpi(ranks) + Reproduce(out, gemm + schedule), dir_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (ranks == 3) {  // the groups really ran on other ranks (their progress lines say so)
      EXPECT_NE(r.err.find("[rank 1] rwkv:tiny-rwkv6-f32 on mrpc"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("[rank 2] rwkv:tiny-rwkv7-f32 on mrpc"), std::string::npos) << r.err;
    }
    int64_t tokens = 0;
    for (const char* task : {"mrpc.json", "stsb.json"}) {
      const json a = ReadJson(want / task), b = ReadJson(out / kRunName / task);
      ASSERT_EQ(a["methods"].size(), 6u) << a["methods"].dump();  // glove sif 2x(rwkv control)
      EXPECT_FALSE(a["comparisons"].empty());
      EXPECT_TRUE(Comparable(a) == Comparable(b))
          << ranks << " ranks, " << task << ": differs from rwkv-embed reproduce";
      ASSERT_TRUE(b.contains("mpi")) << task;
      EXPECT_EQ(b["mpi"], ReadJson(out / kRunName / "mrpc.json")["mpi"]) << "one run, one account";
      tokens += TokensOf(b);
    }
    // The groups' tokens are every method's on every task's scored splits.
    const json mpi = ReadJson(out / kRunName / "mrpc.json")["mpi"];
    CheckAccounting(mpi, ranks, ranks == 3 ? "round-robin" : "dynamic",
                    {"glove+sif", "rwkv:tiny-rwkv6-f32", "rwkv:tiny-rwkv7-f32"});
    EXPECT_EQ(mpi["tokens"], tokens);
    if (ranks == 3) {
      for (int g = 0; g < 3; ++g) EXPECT_EQ(mpi["units"][g]["rank"], g) << "group g on rank g";
    }
    // The same files, no scratch folder or .partial left anywhere, nothing beside OUT/<run>/.
    std::vector<std::string> a_files, b_files;
    for (const auto& e : fs::recursive_directory_iterator(dir_ / "single")) {
      a_files.push_back(fs::relative(e.path(), dir_ / "single").string());
    }
    for (const auto& e : fs::recursive_directory_iterator(out)) {
      b_files.push_back(fs::relative(e.path(), out).string());
    }
    std::sort(a_files.begin(), a_files.end());
    std::sort(b_files.begin(), b_files.end());
    EXPECT_EQ(a_files, b_files);
    const std::string report = testing::ReadFile(out / kRunName / "report.md");
    EXPECT_NE(report.find("Table 1"), std::string::npos);
  }
}

// Four ranks for three groups: rank 3 evaluates nothing and still takes part in the gathering.
TEST_F(MpiSweepTest, EvalOnThreeAndFourRanksWritesWhatOneProcessWrites) {
  const std::string gemm =
      "--gemm-path " + std::string(kernels::GemmPathName(AvailableF32GemmPaths()[0]));
  const ShellRun single = RunShell(Single() + Eval(dir_ / "single.json", gemm), dir_);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const json a = ReadJson(dir_ / "single.json");
  EXPECT_EQ(a["methods"].size(), 6u);
  for (int ranks : {3, 4}) {
    const fs::path out = dir_ / ("mpi" + std::to_string(ranks) + ".json");
    const ShellRun r = RunShell(Mpi(ranks) + Eval(out, gemm), dir_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Comparable(a) == Comparable(ReadJson(out)))
        << ranks << " ranks differ from rwkv-embed eval";
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 5)
      << "a rank wrote something beside the outputs";  // data, stderr.txt, 3 JSON
}

// Without --gemm-path, ranks 1 and 2 read a cache naming another GEMM path than rank 0's: rank 0's
// choices (for every model's shapes) must be the ones every rank multiplies with.
TEST_F(MpiSweepTest, EveryRankMultipliesWithRankZerosGemmChoices) {
  const auto paths = AvailableF32GemmPaths();
  ASSERT_FALSE(paths.empty());
  const fs::path cache_a = CacheChoosing(paths[0], "cache_a");
  ASSERT_EQ(RunShell(WithGemmCache(cache_a) + Single() + Eval(dir_ / "a.json", ""), dir_).exit_code,
            0);
  const json a = Comparable(ReadJson(dir_ / "a.json"));
  fs::path cache_b;
  for (size_t i = 1; i < paths.size() && cache_b.empty(); ++i) {
    const fs::path cache = CacheChoosing(paths[i], "cache_" + std::to_string(i));
    ASSERT_EQ(RunShell(WithGemmCache(cache) + Single() + Eval(dir_ / "b.json", ""), dir_).exit_code,
              0);
    if (Comparable(ReadJson(dir_ / "b.json"))["scores"] != a["scores"]) cache_b = cache;
  }
  if (cache_b.empty())
    GTEST_SKIP() << "every GEMM path gives the same scores here: nothing to tell";
  const std::string args = ShellQuote(RWKV_EMBED_MPI_CLI_PATH) + Eval(dir_ / "mixed.json", "");
  const ShellRun r = RunShell(
      Mpirun(1) + " " + WithGemmCache(cache_a) + args + " : -np 2 " + WithGemmCache(cache_b) + args,
      dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Comparable(ReadJson(dir_ / "mixed.json")) == a) << "a rank used its own GEMM choice";
}

TEST_F(MpiSweepTest, AnErrorOnAnotherRankEndsTheJobAndLeavesNoOutputFolder) {
  // Group 1 (the first model, rank 1 of 2) has a cut-off weights file: the job ends with the exit
  // code and the message of the single-process run, and rank 0, killed by MPI_Abort, left no
  // OUT/<model>/ behind (it creates it only once every result is in).
  const fs::path broken = dir_ / "tiny-rwkv6-f32";
  fs::create_directories(broken);
  for (const auto& e : fs::directory_iterator(Model("tiny-rwkv6-f32"))) {
    fs::copy(e.path(), broken / e.path().filename());
  }
  fs::resize_file(broken / "model.safetensors", fs::file_size(broken / "model.safetensors") / 2);
  std::string args = Reproduce(dir_ / "OUT", "--gemm-path portable");
  const std::string good = ShellQuote(Model("tiny-rwkv6-f32").string());
  args.replace(args.find(good), good.size(), ShellQuote(broken.string()));
  const std::string mpi_args = args + " --schedule round-robin";
  const ShellRun single = RunShell(Single() + args, dir_);
  ASSERT_NE(single.exit_code, 0);
  EXPECT_FALSE(fs::exists(dir_ / "OUT"));
  const ShellRun r = RunShell(Mpi(2) + mpi_args, dir_);
  EXPECT_EQ(r.exit_code, single.exit_code) << r.err;
  EXPECT_NE(r.err.find("error (rank 1 of 2)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "OUT" / kRunName)) << "an aborted sweep left its output folder";
}

// ablate: the intact model and 5 ablations (a 2 x 2 grid on the tiny model's 2 blocks and one
// --ablate) dealt over 2 ranks (dynamic) and 3 (round robin): the JSON, ablation.md and heat
// maps rank 0 writes are a single process's, but for timings, the command line and "mpi".
TEST_F(MpiSweepTest, AblateOnTwoAndThreeRanksWritesWhatOneProcessWrites) {
  const std::string args = " ablate --model " + ShellQuote(Model("tiny-rwkv6-f32").string()) +
                           " --data-dir " + ShellQuote(data_.string()) +
                           " --grid tmix,cmix --blocks all --ablate zero-bonus:all --bootstrap 50 "
                           "--threads 1 --gemm-path portable";
  const auto run = [&](const std::string& program, const std::string& name,
                       const std::string& extra) {
    const ShellRun r = RunShell(program + args + extra + " --output " +
                                    ShellQuote((dir_ / (name + ".json")).string()) + " --out " +
                                    ShellQuote((dir_ / name).string()),
                                dir_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  };
  // The markdown without its command, start and duration rows.
  const auto markdown = [&](const std::string& name) {
    static const std::regex timing("\\| (command|started \\(UTC\\)|evaluation time) \\|[^\\n]*\\n");
    return std::regex_replace(testing::ReadFile(dir_ / name / "ablation.md"), timing, "");
  };
  if (run(Single(), "single", "").exit_code != 0) return;
  const json a = ReadJson(dir_ / "single.json");
  ASSERT_EQ(a["ablations"].size(), 5u) << a.dump();
  EXPECT_FALSE(a.contains("mpi"));
  const std::vector<std::string> names = {"intact",      "skip-tmix:1", "skip-tmix:2",
                                          "skip-cmix:1", "skip-cmix:2", "zero-bonus:all"};
  for (int ranks : {2, 3}) {
    const std::string name = "mpi" + std::to_string(ranks);
    const ShellRun r = run(Mpi(ranks), name, ranks == 3 ? " --schedule round-robin" : "");
    if (r.exit_code != 0) continue;
    const json b = ReadJson(dir_ / (name + ".json"));
    EXPECT_TRUE(Comparable(a) == Comparable(b)) << ranks << " ranks differ from rwkv-embed ablate";
    EXPECT_EQ(markdown("single"), markdown(name)) << ranks << " ranks";
    for (const char* plot : {"plots/ablation-layers.dat", "plots/ablation-grid.dat"}) {
      EXPECT_EQ(testing::ReadFile(dir_ / "single" / plot), testing::ReadFile(dir_ / name / plot))
          << plot;
    }
    ASSERT_TRUE(b.contains("mpi"));
    // Every pass embeds the same split: the same tokens each.
    const std::vector<int64_t> tokens =
        CheckAccounting(b["mpi"], ranks, ranks == 3 ? "round-robin" : "dynamic", names);
    for (int64_t t : tokens) EXPECT_EQ(t, tokens.front());
    if (ranks == 3) {  // pass u on rank u mod 3, and the other ranks' progress lines say so
      for (size_t u = 0; u < names.size(); ++u) EXPECT_EQ(b["mpi"]["units"][u]["rank"], u % 3);
      EXPECT_NE(r.err.find("[rank 1] ablate: [1/5] skip-tmix:1"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("[rank 2] ablate: [2/5] skip-tmix:2"), std::string::npos) << r.err;
    }
  }
  // A bad plan (block 3 of a 2-block model) ends the job as it ends one process: same exit code
  // and message, no output.
  const std::string bad = " ablate --model " + ShellQuote(Model("tiny-rwkv6-f32").string()) +
                          " --data-dir " + ShellQuote(data_.string()) +
                          " --grid tmix --blocks 3 --gemm-path portable --output " +
                          ShellQuote((dir_ / "bad.json").string());
  const ShellRun one = RunShell(Single() + bad, dir_);
  EXPECT_EQ(one.exit_code, 2) << one.err;
  const ShellRun job = RunShell(Mpi(2) + bad, dir_);
  EXPECT_EQ(job.exit_code, one.exit_code) << job.err;
  EXPECT_NE(job.err.find("error (rank "), std::string::npos) << job.err;
  EXPECT_NE(job.err.find("block 3 is beyond the model's 2 blocks"), std::string::npos) << job.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad.json"));
}

#endif  // RWKV_EMBED_MPI_CLI_PATH

}  // namespace
}  // namespace rwkv_embed
