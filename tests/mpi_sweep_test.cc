// rwkv-embed-mpi eval / reproduce under mpirun (apps/mpi/sweep.cc): the methods dealt over the
// ranks, gathered on rank 0, written as one process writes them — every number identical to plain
// `rwkv-embed` with the same GEMM paths. Skipped when MPI was not built.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/gemm_autotune.h"
#include "model/rwkv_embedder.h"
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

using testing::ReadFile;
using testing::RunShell;
using testing::ShellQuote;
using testing::ShellRun;

void CopyHead(const fs::path& from, const fs::path& to, int lines) {
  fs::create_directories(to.parent_path());
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  std::string line;
  for (int i = 0; i < lines && std::getline(in, line); ++i) out << line << "\n";
}

// What may differ between two runs of the same evaluation: when, how fast, how much memory, the
// command line, and the random control's scratch folder (a pid in its name) in its description.
// Everything else — every score, CI, cosine-derived metric, comparison, setting, note — must not.
json Comparable(json j) {
  static const std::vector<std::string> kIgnored = {
      "started_at",       "evaluation_time",      "command_line",
      "load_seconds",     "peak_rss_mib",         "embed_seconds",
      "seconds_per_pair", "seconds_per_sentence", "tokens_per_second"};
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
    // 40 MRPC train, 30 dev, 20 test pairs; 19 STS-B pairs per split (as cli_eval_test).
    const fs::path data = testing::SharedDir() / "data";
    data_ = dir_ / "data";
    CopyHead(data / "mrpc/train.tsv", data_ / "mrpc/train.tsv", 41);
    CopyHead(data / "mrpc/dev.tsv", data_ / "mrpc/dev.tsv", 31);
    CopyHead(data / "mrpc/msr_paraphrase_test.txt", data_ / "mrpc/msr_paraphrase_test.txt", 21);
    for (const char* s : {"train", "dev", "test"}) {
      CopyHead(data / "stsb" / (std::string("sts-") + s + ".tsv"),
               data_ / "stsb" / (std::string("sts-") + s + ".tsv"), 20);
    }
  }

  static std::string Mpirun(int ranks) {
    std::string s = ShellQuote(RWKV_EMBED_MPIEXEC) +
                    " --oversubscribe --mca btl_vader_single_copy_mechanism none";
    if (::geteuid() == 0) s += " --allow-run-as-root";
    return s + " -np " + std::to_string(ranks);
  }
  static std::string WithCache(const fs::path& cache) {
    return "env RWKV_EMBED_CACHE_DIR=" + ShellQuote(cache.string()) + " ";
  }
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

  // A GEMM cache in a fresh folder naming `path` for every weight shape of both models.
  fs::path CacheChoosing(kernels::GemmPath path, const std::string& name) const {
    kernels::ResetGemmAutotune();
    for (const char* m : {"tiny-rwkv6-f32", "tiny-rwkv7-f32"}) {
      auto e = RwkvEmbedder::Load(Model(m));
      const std::vector<std::string> probe = {"shapes"};
      (void)e->Embed(probe, EmbedRequest{});
    }
    auto entries = kernels::GemmTuneTable();
    kernels::ResetGemmAutotune();
    EXPECT_FALSE(entries.empty());
    for (auto& entry : entries) {
      entry.path = path;
      entry.gflops.clear();
    }
    fs::path dir = dir_ / name;
    fs::create_directories(dir);
    const auto id = kernels::CurrentGemmCacheIdentity();
    kernels::SaveGemmCache(kernels::GemmCacheFile(dir, id), id, entries);
    return dir;
  }

  static std::vector<kernels::GemmPath> AvailablePaths() {
    std::vector<kernels::GemmPath> paths;
    for (auto p : {kernels::GemmPath::kAvx512F32, kernels::GemmPath::kAvx2F32,
                   kernels::GemmPath::kOneDnnF32, kernels::GemmPath::kPortable}) {
      if (kernels::GemmPathAvailable(p)) paths.push_back(p);
    }
    return paths;
  }

  fs::path dir_, data_;
};

json ReadJson(const fs::path& p) { return json::parse(ReadFile(p)); }

constexpr const char* kRunName = "tiny-rwkv6-f32+tiny-rwkv7-f32";

TEST_F(MpiSweepTest, ReproduceOnTwoAndThreeRanksWritesWhatOneProcessWrites) {
  const std::string gemm = "--gemm-path " + std::string(kernels::GemmPathName(AvailablePaths()[0]));
  const ShellRun single = RunShell(Single() + Reproduce(dir_ / "single", gemm), dir_);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const fs::path want = dir_ / "single" / kRunName;
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
    for (const char* task : {"mrpc.json", "stsb.json"}) {
      const json a = ReadJson(want / task), b = ReadJson(out / kRunName / task);
      ASSERT_EQ(a["methods"].size(), 6u) << a["methods"].dump();  // glove sif 2x(rwkv control)
      EXPECT_FALSE(a["comparisons"].empty());
      EXPECT_TRUE(Comparable(a) == Comparable(b))
          << ranks << " ranks, " << task << ": differs from rwkv-embed reproduce";
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
    const std::string report = ReadFile(out / kRunName / "report.md");
    EXPECT_NE(report.find("Table 1"), std::string::npos);
  }
}

// Four ranks for three groups: rank 3 evaluates nothing and still takes part in the gathering.
TEST_F(MpiSweepTest, EvalOnThreeAndFourRanksWritesWhatOneProcessWrites) {
  const std::string gemm = "--gemm-path " + std::string(kernels::GemmPathName(AvailablePaths()[0]));
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
  const auto paths = AvailablePaths();
  ASSERT_FALSE(paths.empty());
  const fs::path cache_a = CacheChoosing(paths[0], "cache_a");
  ASSERT_EQ(RunShell(WithCache(cache_a) + Single() + Eval(dir_ / "a.json", ""), dir_).exit_code, 0);
  const json a = Comparable(ReadJson(dir_ / "a.json"));
  fs::path cache_b;
  for (size_t i = 1; i < paths.size() && cache_b.empty(); ++i) {
    const fs::path cache = CacheChoosing(paths[i], "cache_" + std::to_string(i));
    ASSERT_EQ(RunShell(WithCache(cache) + Single() + Eval(dir_ / "b.json", ""), dir_).exit_code, 0);
    if (Comparable(ReadJson(dir_ / "b.json"))["scores"] != a["scores"]) cache_b = cache;
  }
  if (cache_b.empty())
    GTEST_SKIP() << "every GEMM path gives the same scores here: nothing to tell";
  const std::string args = ShellQuote(RWKV_EMBED_MPI_CLI_PATH) + Eval(dir_ / "mixed.json", "");
  const ShellRun r = RunShell(
      Mpirun(1) + " " + WithCache(cache_a) + args + " : -np 2 " + WithCache(cache_b) + args, dir_);
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

#endif  // RWKV_EMBED_MPI_CLI_PATH

}  // namespace
}  // namespace rwkv_embed
