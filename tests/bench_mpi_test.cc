// rwkv-embed bench --mpi (bench/mpi_scaling.h, bench/child_process.h, apps/cli/cmd_bench_mpi.cc):
// the run.json reader and cluster model on hand-made accounting; the launcher's error paths with
// stand-ins for mpirun and rwkv-embed-mpi (shell scripts, so they run without MPI); and the real
// thing, rwkv-embed-mpi under mpirun, on the tiny model (skipped when MPI was not built).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/child_process.h"
#include "bench/mpi_scaling.h"
#include "core/error.h"
#include "kernels/gemm_autotune.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ReadFile;
using testing::RunShell;
using testing::ShellQuote;
using testing::ShellRun;

// The accounting of a run as rwkv-embed-mpi writes it (the fields the report reads and a few
// more): 10 sentences, 100 tokens, 2 s in all of which 1 s in the loop, two shards of 50 bytes.
json RunJson(int ranks) {
  return {
      {"command", "embed"},
      {"ranks", ranks},
      {"threads_per_rank", 2 / ranks},
      {"sentences", 10},
      {"shards", 2},
      {"shards_this_run", 2},
      {"resumed", false},
      {"tokens_this_run", 100},
      {"tokens_per_second", 100.0},
      {"load_balance_max_over_mean", 1.25},
      {"seconds", {{"plan", 0.1}, {"total", 2.0}, {"embed_loop", 1.0}}},
      {"per_rank", {{{"rank", 0}, {"busy_seconds", 0.75}}, {{"rank", 1}, {"busy_seconds", 0.5}}}},
      {"shard_timings",
       {{{"bytes", {0, 50}}, {"seconds", 0.75}}, {{"bytes", {50, 100}}, {"seconds", 0.5}}}},
      {"gemm_choices", json::array()}};
}

TEST(MpiScalingTest, ReadsTheRunAccounting) {
  const bench::MpiRun r = bench::ParseMpiRun(RunJson(2).dump(), "a.run.json");
  EXPECT_EQ(r.ranks, 2);
  EXPECT_EQ(r.threads_per_rank, 1);
  EXPECT_EQ(r.sentences, 10);
  EXPECT_EQ(r.shards, 2);
  EXPECT_EQ(r.tokens, 100);
  EXPECT_EQ(r.input_bytes, 100);
  EXPECT_DOUBLE_EQ(r.wall_s, 2.0);
  EXPECT_DOUBLE_EQ(r.embed_loop_s, 1.0);
  EXPECT_DOUBLE_EQ(r.max_busy_s, 0.75);
  EXPECT_DOUBLE_EQ(r.longest_shard_s, 0.75);
  EXPECT_DOUBLE_EQ(r.load_balance, 1.25);
  EXPECT_DOUBLE_EQ(r.TokensPerWallSecond(), 50.0);
  EXPECT_DOUBLE_EQ(r.OutsideEmbeddingSeconds(), 1.25);
  EXPECT_EQ(r.gemm_choices, "[]");
}

TEST(MpiScalingTest, MalformedAccountingNamesTheFileAndField) {
  auto expect_error = [](const json& j, const std::string& field) {
    try {
      bench::ParseMpiRun(j.dump(), "x.run.json");
      ADD_FAILURE() << "accepted " << j.dump();
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("x.run.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  json j = RunJson(1);
  j.erase("tokens_this_run");
  expect_error(j, "tokens_this_run");
  j = RunJson(1);
  j["seconds"].erase("embed_loop");
  expect_error(j, "seconds.embed_loop");
  j = RunJson(1);
  j["per_rank"][1]["busy_seconds"] = "soon";
  expect_error(j, "per_rank[].busy_seconds");
  j = RunJson(1);
  j["shard_timings"][0]["bytes"] = {3};
  expect_error(j, "shard_timings[].bytes");
  EXPECT_THROW(bench::ParseMpiRun("{\"ranks\": ", "x.run.json"), FormatError);
  j = RunJson(1);
  j["resumed"] = true;
  EXPECT_THROW(bench::ParseMpiRun(j.dump(), "x.run.json"), DataError);
}

// R = 100 tokens / 1 s, k = 10 tokens, 10 bytes per sentence, fixed = 2 - 1 s. 1000 sentences on
// 2 nodes: 1000 x 10 / (2 x 100) = 50 s embedding; the shard would be 10,000 / 32 bytes, raised
// to the 4 KiB minimum: 409.6 sentences = 40.96 s of tail.
TEST(MpiScalingTest, ClusterModelFollowsTheReadmeFormula) {
  const bench::MpiRun base = bench::ParseMpiRun(RunJson(1).dump(), "a");
  const bench::ClusterModel m = bench::FitClusterModel(base, 2, 1000);
  EXPECT_DOUBLE_EQ(m.rate_tokens_per_s, 100);
  EXPECT_DOUBLE_EQ(m.tokens_per_sentence, 10);
  EXPECT_DOUBLE_EQ(m.bytes_per_sentence, 10);
  EXPECT_DOUBLE_EQ(m.fixed_s, 1);
  EXPECT_DOUBLE_EQ(m.embed_s, 50);
  EXPECT_DOUBLE_EQ(m.shard_bytes, 4096);
  EXPECT_NEAR(m.tail_s, 40.96, 1e-9);
  EXPECT_NEAR(m.wall_s, 91.96, 1e-9);
  // 10^9 sentences of 10 bytes on 64 nodes: 10^10 / (16 x 64) bytes, capped at 4 MiB.
  const bench::ClusterModel big = bench::FitClusterModel(base, 64, 1e9);
  EXPECT_DOUBLE_EQ(big.shard_bytes, 4 << 20);
  EXPECT_NEAR(big.embed_s, 1e9 * 10 / (64 * 100.0), 1e-3);
  EXPECT_THROW(bench::FitClusterModel(base, 0, 1000), UsageError);
}

TEST(MpiScalingTest, RunsMustAgreeAndTheOneRankRunIsTheBase) {
  std::vector<bench::MpiRun> runs = {bench::ParseMpiRun(RunJson(2).dump(), "a"),
                                     bench::ParseMpiRun(RunJson(1).dump(), "b")};
  EXPECT_EQ(bench::CheckRunsAgree(runs).ranks, 1);
  runs[1].tokens = 99;
  EXPECT_THROW(bench::CheckRunsAgree(runs), DataError);
}

TEST(MpiScalingTest, ReportsSayItMeasuresOverheadNotSpeedUp) {
  bench::MpiScalingReport r;
  r.runs = {bench::ParseMpiRun(RunJson(1).dump(), "a"), bench::ParseMpiRun(RunJson(2).dump(), "b")};
  r.runs[1].wall_s = 4.0;
  r.bit_identical = true;
  r.model_estimate = bench::FitClusterModel(r.runs[0], 64, 1e8);
  const json j = bench::ToJson(r);
  EXPECT_NE(j["note"].get<std::string>().find("not a speed-up"), std::string::npos);
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_DOUBLE_EQ(j["runs"][0]["efficiency_vs_first"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["runs"][1]["efficiency_vs_first"].get<double>(), 0.5);
  EXPECT_GT(j["cluster_model"]["estimated_wall_seconds"].get<double>(), 0);
  const std::string md = bench::ToMarkdown(r);
  EXPECT_NE(md.find("not a speed-up"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 x 1 | 2 | 4.00 | 1.00 | 25.0 | 0.500 | 1.250 | 3.25 |"), std::string::npos)
      << md;
}

TEST(MpiScalingTest, FirstDifference) {
  const fs::path dir = testing::TempDir();
  std::ofstream(dir / "a", std::ios::binary) << "abcdef";
  std::ofstream(dir / "b", std::ios::binary) << "abcdef";
  std::ofstream(dir / "c", std::ios::binary) << "abXdef";
  std::ofstream(dir / "d", std::ios::binary) << "abc";
  EXPECT_EQ(bench::FirstDifference(dir / "a", dir / "b"), -1);
  EXPECT_EQ(bench::FirstDifference(dir / "a", dir / "c"), 2);
  EXPECT_EQ(bench::FirstDifference(dir / "a", dir / "d"), 3);
  EXPECT_THROW(bench::FirstDifference(dir / "a", dir / "missing"), IoError);
}

// bench --mpi hands the first run's GEMM choices (run.json `gemm_choices`) to the later runs as
// their cache: what it writes must read back, for this build and CPU, as the same choices.
TEST(MpiScalingTest, GemmChoicesWrittenAsACacheReadBack) {
  const fs::path dir = testing::TempDir() / "cache";
  const json choices = {{{"n", 64},
                         {"k", 32},
                         {"dtype", "F32"},
                         {"precision", "f32"},
                         {"bucket", -1},
                         {"threads", 0},
                         {"path", "portable"},
                         {"gflops", json::object()}}};
  const fs::path file = kernels::SaveGemmChoicesAsCache(choices.dump(), dir);
  const auto id = kernels::CurrentGemmCacheIdentity();
  EXPECT_EQ(file, kernels::GemmCacheFile(dir, id));
  const auto entries = kernels::LoadGemmCache(file, id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].n, 64);
  EXPECT_EQ(entries[0].k, 32);
  EXPECT_EQ(entries[0].path, kernels::GemmPath::kPortable);
  EXPECT_THROW(kernels::SaveGemmChoicesAsCache("[{", dir), FormatError);
}

TEST(ChildProcessTest, PassesArgvVerbatimAndTheEnvironmentOverrides) {
  const fs::path dir = testing::TempDir();
  const fs::path sh = bench::FindExecutable("sh");
  ASSERT_FALSE(sh.empty());
  // An argument with quotes, spaces and $ reaches the child as one argument, unexpanded.
  const std::string odd = "it's \"a\" $HOME; echo no";
  const bench::ChildExit ok = bench::RunChild(
      {sh.string(), "-c", "test \"$1\" = \"$2\" && test \"$X\" = y", "sh", odd, odd}, {"X=y"});
  EXPECT_TRUE(ok.Succeeded()) << ok.Describe();
  EXPECT_EQ(bench::RunChild({sh.string(), "-c", "exit 6"}).exit_code, 6);
  const bench::ChildExit killed = bench::RunChild({sh.string(), "-c", "kill -9 $$"});
  EXPECT_EQ(killed.signal, 9);
  EXPECT_NE(killed.Describe().find("signal 9"), std::string::npos);
  EXPECT_THROW(bench::RunChild({(dir / "absent").string()}), IoError);
  EXPECT_TRUE(bench::FindExecutable((dir / "absent").string()).empty());
  EXPECT_TRUE(bench::FindExecutable("rwkv-embed-no-such-program").empty());
}

// ---- The command -------------------------------------------------------------------------------

std::string Bench(const std::string& args) {
  return ShellQuote(testing::CliPath().string()) + " bench " + args;
}

void WriteExecutable(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  ::chmod(path.c_str(), 0755);
}

// Stand-ins: mpirun runs its program once with NP set; rwkv-embed-mpi writes OUT (its content
// "same", or the rank count when FAKE_MODE=differ), OUT.run.json, or exits with FAKE_MODE.
class BenchMpiFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir();
    WriteExecutable(dir_ / "mpirun",
                    "#!/bin/sh\nwhile [ \"$1\" != -np ]; do shift; done\n"
                    "export NP=$2\nshift 2\nexec \"$@\"\n");
    std::string run = RunJson(1).dump();
    run.replace(run.find("\"ranks\":1"), 9, "\"ranks\":'\"$NP\"'");
    WriteExecutable(dir_ / "rwkv-embed-mpi",
                    "#!/bin/sh\nwhile [ \"$1\" != --output ]; do shift; done\nout=$2\n"
                    "case $FAKE_MODE in [0-9]*) exit $FAKE_MODE;; differ) echo $NP >\"$out\";; "
                    "*) echo same >\"$out\";; esac\necho '" +
                        run + "' >\"$out.run.json\"\n");
    std::ofstream(dir_ / "in.txt") << "a\nb\n";
  }
  ShellRun Run(const std::string& mode, const std::string& args = "--mpi 1,2") const {
    return RunShell(
        "env TMPDIR=" + ShellQuote(dir_.string()) + " FAKE_MODE=" + mode +
            " MPIRUN=" + ShellQuote((dir_ / "mpirun").string()) + " " +
            Bench(args + " --model m --input " + ShellQuote((dir_ / "in.txt").string()) +
                  " --mpi-exe " + ShellQuote((dir_ / "rwkv-embed-mpi").string()) +
                  " -o json --output " + ShellQuote((dir_ / "out.json").string())),
        dir_);
  }
  // Nothing left of the scratch folder (under TMPDIR = dir_).
  void ExpectNoScratchLeft() const {
    for (const auto& e : fs::directory_iterator(dir_)) {
      EXPECT_EQ(e.path().filename().string().find("rwkv-embed-bench-mpi-"), std::string::npos)
          << e.path();
    }
  }
  fs::path dir_;
};

TEST_F(BenchMpiFakeTest, ReportsTheRunsOfTheStandIns) {
  const ShellRun r = Run("same", "--mpi 1,2,4 --threads 4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(ReadFile(dir_ / "out.json"));
  ASSERT_EQ(j["runs"].size(), 3u);
  EXPECT_EQ(j["runs"][2]["ranks"], 4);
  EXPECT_TRUE(j["bit_identical"].get<bool>());
  EXPECT_EQ(j["settings"]["total_threads"], 4);
  EXPECT_NE(r.err.find("4 rank(s) x 1 thread(s)"), std::string::npos) << r.err;
  ExpectNoScratchLeft();
}

TEST_F(BenchMpiFakeTest, OutputsThatDifferStopItWithADataError) {
  const ShellRun r = Run("differ");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("output of 2 ranks differs from that of 1 at byte 0"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out.json"));
  ExpectNoScratchLeft();
}

TEST_F(BenchMpiFakeTest, AFailedRunEndsItWithTheRunsExitCode) {
  const ShellRun r = Run("4");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("mpirun -np 1 rwkv-embed-mpi embed exited with code 4"), std::string::npos)
      << r.err;
  ExpectNoScratchLeft();
}

TEST_F(BenchMpiFakeTest, MissingProgramsAndBadRankListsAreUsageErrors) {
  const std::string input = " --model m --input " + ShellQuote((dir_ / "in.txt").string());
  ShellRun r = RunShell("env RWKV_EMBED_MPI_EXE=" + ShellQuote((dir_ / "no-mpi").string()) + " " +
                            Bench("--mpi 1,2" + input),
                        dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("rwkv-embed-mpi not found at " + (dir_ / "no-mpi").string()),
            std::string::npos)
      << r.err;
  r = RunShell(
      "env MPIRUN=" + ShellQuote((dir_ / "no-mpirun").string()) + " " +
          Bench("--mpi 1,2 --mpi-exe " + ShellQuote((dir_ / "rwkv-embed-mpi").string()) + input),
      dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("mpirun not found as " + (dir_ / "no-mpirun").string()), std::string::npos)
      << r.err;
  for (const std::string list : {"1,0", "1,,2", "two", "''", "1,2,2000"}) {
    r = Run("same", "--mpi " + list);
    EXPECT_EQ(r.exit_code, 2) << list << ": " << r.err;
    EXPECT_NE(r.err.find("--mpi"), std::string::npos) << list << ": " << r.err;
  }
  r = Run("same", "--mpi 1,2 --threads 1,2");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = RunShell(Bench("--mpi 1 --model m"), dir_);  // neither --input nor --data-dir
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // Options of the other mode are refused, not ignored.
  r = Run("same", "--mpi 1 --lengths 32");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--lengths is not an option of bench --mpi"), std::string::npos) << r.err;
  r = RunShell(Bench("--model m --shard-bytes 100"), dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--shard-bytes needs --mpi"), std::string::npos) << r.err;
  ExpectNoScratchLeft();
}

// ---- The real thing ----------------------------------------------------------------------------

#ifndef RWKV_EMBED_MPI_CLI_PATH
TEST(BenchMpiTest, NotBuilt) {
  GTEST_SKIP() << "rwkv-embed-mpi was not built (MPI not found, or -DRWKV_EMBED_MPI=OFF) or "
                  "mpiexec was not found (Debian: openmpi-bin): bench --mpi did not run under MPI";
}
#else
TEST(BenchMpiTest, OneAndTwoRanksOnTheTinyModel) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32");
  const fs::path dir = testing::TempDir();
  {
    std::ofstream in(dir / "in.txt", std::ios::binary);
    for (int i = 0; i < 40; ++i) in << "sentence number " << i << " of the bench input\n";
  }
  // Containers often forbid the cross-process memory reads of Open MPI's shared-memory copies.
  const ShellRun r = RunShell(
      "env OMPI_MCA_btl_vader_single_copy_mechanism=none MPIRUN=" + ShellQuote(RWKV_EMBED_MPIEXEC) +
          " RWKV_EMBED_MPI_EXE=" + ShellQuote(RWKV_EMBED_MPI_CLI_PATH) +
          " TMPDIR=" + ShellQuote(dir.string()) + " " +
          Bench("--mpi 1,2 --threads 2 --precision f32 --layers all --shard-bytes 97 --model " +
                ShellQuote(model.string()) + " --input " + ShellQuote((dir / "in.txt").string()) +
                " -o json --output " + ShellQuote((dir / "out.json").string())),
      dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(ReadFile(dir / "out.json"));
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_TRUE(j["bit_identical"].get<bool>());
  EXPECT_NE(j["note"].get<std::string>().find("not a speed-up"), std::string::npos);
  const json& one = j["runs"][0];
  const json& two = j["runs"][1];
  EXPECT_EQ(one["ranks"], 1);
  EXPECT_EQ(one["threads_per_rank"], 2);
  EXPECT_EQ(two["ranks"], 2);
  EXPECT_EQ(two["threads_per_rank"], 1);
  EXPECT_DOUBLE_EQ(one["efficiency_vs_first"].get<double>(), 1.0);
  EXPECT_EQ(one["sentences"], 40);
  EXPECT_EQ(two["sentences"], 40);
  EXPECT_GT(one["tokens"].get<int64_t>(), 40);
  EXPECT_EQ(one["tokens"], two["tokens"]);
  EXPECT_EQ(one["shards"], two["shards"]);
  EXPECT_GT(one["shards"].get<int>(), 4);
  for (const json& run : j["runs"]) {
    EXPECT_GE(run["load_balance_max_over_mean"].get<double>(), 1.0);
    EXPECT_GT(run["wall_seconds"].get<double>(), 0);
  }
  const json& m = j["cluster_model"];
  EXPECT_EQ(m["rate_from_ranks"], 1);
  EXPECT_GT(m["rate_tokens_per_second"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(m["tokens_per_sentence"].get<double>(), one["tokens"].get<double>() / 40);
  EXPECT_EQ(m["nodes"], 64.0);
  EXPECT_EQ(m["sentences"], 1e8);
  EXPECT_GT(m["estimated_wall_seconds"].get<double>(), m["embed_seconds"].get<double>());
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename().string().find("rwkv-embed-bench-mpi-"), std::string::npos);
  }
}
#endif

}  // namespace
}  // namespace rwkv_embed
