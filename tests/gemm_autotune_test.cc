// GEMM path choice by measurement: the choice is a path that can take the problem, FP32 problems
// get one choice for every m, and the cache file is written, read back instead of measuring,
// ignored when written for another CPU, malformed, or switched off. Every test uses its own
// temporary cache folder (never the user's).
#include "kernels/gemm_autotune.h"

#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace rwkv_embed::kernels {
namespace {

namespace fs = std::filesystem;

class GemmAutotuneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rwkv-embed-autotune-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    setenv("RWKV_EMBED_CACHE_DIR", dir_.c_str(), 1);
    ForceGemmPath(GemmPath::kAuto);
    ResetGemmAutotune();
    SetGemmTimingStabilityCheck(false);
  }
  void TearDown() override {
    setenv("RWKV_EMBED_CACHE_DIR", "off", 1);
    SetGemmTimingStabilityCheck(true);
    ResetGemmAutotune();
    fs::remove_all(dir_);
  }

  // Runs one product (which chooses its path) on a BF16 W [n, k].
  static GemmPath Multiply(int64_t m, int64_t n, int64_t k, MatMulPrecision precision,
                           DType dtype = DType::kBF16) {
    std::vector<uint16_t> wb(static_cast<size_t>(n * k), F32ToBf16(0.25f));
    std::vector<float> wf(static_cast<size_t>(n * k), 0.25f), x(static_cast<size_t>(m * k), 1.0f),
        y(static_cast<size_t>(m * n));
    const WeightMatrix w{
        dtype, dtype == DType::kBF16 ? static_cast<const void*>(wb.data()) : wf.data(), n, k};
    MatMulT(x.data(), m, w, y.data(), precision);
    EXPECT_EQ(y[0], 0.25f * static_cast<float>(k));
    return SelectGemmPath(m, w, precision);
  }

  // Whether this machine has two or more paths for BF16 weights at kBF16 (else nothing is timed).
  static bool HasChoice() {
    int n = 0;
    for (GemmPath p : kAllGemmPaths) {
      n += p != GemmPath::kPortable && GemmPathAvailable(p) &&
           GemmPathAccepts(p, DType::kBF16, MatMulPrecision::kBF16);
    }
    return n >= 2;
  }

  fs::path dir_;
};

TEST_F(GemmAutotuneTest, BucketsCoverEveryM) {
  EXPECT_EQ(GemmMBucket(1), 0);
  EXPECT_EQ(GemmMBucket(8), 0);
  EXPECT_EQ(GemmMBucket(9), 1);
  EXPECT_EQ(GemmMBucket(128), 2);
  EXPECT_EQ(GemmMBucket(512), 3);
  EXPECT_EQ(GemmMBucket(513), 4);
  EXPECT_EQ(GemmMBucketName(0), "m<=8");
  EXPECT_EQ(GemmMBucketName(4), "m>512");
  EXPECT_EQ(GemmMBucketName(-1), "any m");
}

TEST_F(GemmAutotuneTest, MeasuresOnFirstUseWritesTheCacheAndReadsItBack) {
  if (!HasChoice()) GTEST_SKIP() << "one GEMM path for BF16 weights on this CPU: nothing to time";
  const GemmPath chosen = Multiply(16, 256, 256, MatMulPrecision::kBF16);
  EXPECT_TRUE(GemmPathAccepts(chosen, DType::kBF16, MatMulPrecision::kBF16));
  auto table = GemmTuneTable();
  ASSERT_EQ(table.size(), 1u);
  EXPECT_EQ(table[0].source, "measured");
  EXPECT_EQ(table[0].bucket, -1);  // one choice for every m
  EXPECT_EQ(table[0].threads, 0);  // and every thread count
  EXPECT_EQ(table[0].path, chosen);
  EXPECT_GE(table[0].gflops.size(), 2u);
  for (const auto& [p, g] : table[0].gflops) EXPECT_GT(g, 0.0) << GemmPathName(p);
  EXPECT_GT(GemmAutotuneSeconds(), 0.0);

  const fs::path file = GemmCacheFile(dir_, CurrentGemmCacheIdentity());
  ASSERT_TRUE(fs::exists(file)) << file;
  ASSERT_EQ(LoadGemmCache(file, CurrentGemmCacheIdentity()).size(), 1u);

  // A new process (simulated): the choice comes from the file, nothing is timed.
  ResetGemmAutotune();
  EXPECT_EQ(Multiply(16, 256, 256, MatMulPrecision::kBF16), chosen);
  table = GemmTuneTable();
  ASSERT_EQ(table.size(), 1u);
  EXPECT_EQ(table[0].source, "cache");
  EXPECT_EQ(GemmAutotuneSeconds(), 0.0);
  EXPECT_NE(GemmCacheStatus().find("read 1 entries"), std::string::npos) << GemmCacheStatus();
}

TEST_F(GemmAutotuneTest, AnotherCpuOrBuildDoesNotUseTheCache) {
  const GemmCacheIdentity here = CurrentGemmCacheIdentity();
  GemmTuneEntry e;
  e.n = 64;
  e.k = 64;
  e.dtype = DType::kBF16;
  e.precision = MatMulPrecision::kBF16;
  e.bucket = -1;  // one choice for every m and thread count
  e.threads = 0;
  e.path = GemmPath::kPortable;
  e.gflops = {{GemmPath::kPortable, 1.5}};
  fs::create_directories(dir_);
  GemmCacheIdentity other_cpu = here;
  other_cpu.cpu = "Some Other CPU (family 6 model 1 stepping 0) [avx2]";
  GemmCacheIdentity other_build = here;
  other_build.build += " patched";
  // Another CPU or build gets another file name, and a file is only read for its own identity.
  EXPECT_NE(GemmCacheFile(dir_, other_cpu), GemmCacheFile(dir_, here));
  EXPECT_NE(GemmCacheFile(dir_, other_build), GemmCacheFile(dir_, here));
  const fs::path file = GemmCacheFile(dir_, here);
  SaveGemmCache(file, other_cpu, {e});
  EXPECT_TRUE(LoadGemmCache(file, here).empty());
  EXPECT_EQ(LoadGemmCache(file, other_cpu).size(), 1u);
  SaveGemmCache(file, here, {e});
  const auto back = LoadGemmCache(file, here);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].n, 64);
  EXPECT_EQ(back[0].bucket, -1);
  EXPECT_EQ(back[0].threads, 0);
  // An entry for one m range or thread count (older builds) is ignored: it would make results
  // depend on batching.
  GemmTuneEntry ranged = e;
  ranged.bucket = 1;
  ranged.threads = 2;
  SaveGemmCache(file, here, {ranged});
  EXPECT_TRUE(LoadGemmCache(file, here).empty());
  SaveGemmCache(file, here, {e});
  EXPECT_EQ(back[0].path, GemmPath::kPortable);
  ASSERT_EQ(back[0].gflops.size(), 1u);
  EXPECT_EQ(back[0].gflops[0].second, 1.5);
}

TEST_F(GemmAutotuneTest, MalformedOrUnrunnableEntriesAreIgnored) {
  const GemmCacheIdentity here = CurrentGemmCacheIdentity();
  fs::create_directories(dir_);
  const fs::path file = GemmCacheFile(dir_, here);
  {
    std::ofstream out(file);
    out << "{\"identity\": {\"cpu\": 1";  // truncated
  }
  EXPECT_TRUE(LoadGemmCache(file, here).empty());
  EXPECT_TRUE(LoadGemmCache(dir_ / "absent.json", here).empty());
  // A path that cannot take the entry's problem (BF16 math for F32 weights) is dropped.
  GemmTuneEntry e;
  e.n = e.k = 64;
  e.dtype = DType::kF32;
  e.precision = MatMulPrecision::kBF16;
  e.threads = 1;
  e.path = GemmPath::kAvx512Bf16;
  SaveGemmCache(file, here, {e});
  EXPECT_TRUE(LoadGemmCache(file, here).empty());
  // Measuring still works over a bad file (and replaces it).
  {
    std::ofstream out(file);
    out << "not json";
  }
  ResetGemmAutotune();
  Multiply(4, 64, 64, MatMulPrecision::kBF16);
}

TEST_F(GemmAutotuneTest, Fp32ProblemsHaveOneChoiceForEveryMAndThreadCount) {
  // Every row must come out the same whatever m and --threads are (embeddings independent of
  // batching and threads).
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Multiply(1, 128, 128, MatMulPrecision::kF32);
  omp_set_num_threads(2);
  Multiply(700, 128, 128, MatMulPrecision::kF32);
  omp_set_num_threads(saved);
  Multiply(3, 128, 128, MatMulPrecision::kBF16, DType::kF32);  // F32 weights: FP32 math too
  const auto table = GemmTuneTable();
  ASSERT_EQ(table.size(), 2u);  // one per (dtype, precision), never per m
  for (const auto& e : table) {
    EXPECT_EQ(e.bucket, -1);
    EXPECT_EQ(e.threads, 0);
    EXPECT_FALSE(GemmPathRoundsToBf16(e.path)) << GemmPathName(e.path);
  }
}

TEST_F(GemmAutotuneTest, CacheOffWritesNothingAndForcedPathsMeasureNothing) {
  setenv("RWKV_EMBED_CACHE_DIR", "off", 1);
  EXPECT_TRUE(GemmCacheDir().empty());
  Multiply(16, 256, 256, MatMulPrecision::kBF16);
  EXPECT_FALSE(fs::exists(dir_));
  EXPECT_NE(GemmCacheStatus().find("disabled"), std::string::npos) << GemmCacheStatus();

  ResetGemmAutotune();
  ForceGemmPath(GemmPath::kPortable);
  EXPECT_EQ(Multiply(16, 256, 256, MatMulPrecision::kBF16), GemmPath::kPortable);
  EXPECT_TRUE(GemmTuneTable().empty());
  EXPECT_EQ(GemmAutotuneSeconds(), 0.0);
  ForceGemmPath(GemmPath::kAuto);
}

TEST_F(GemmAutotuneTest, CacheFolderFollowsTheEnvironment) {
  setenv("RWKV_EMBED_CACHE_DIR", "/some/where", 1);
  EXPECT_EQ(GemmCacheDir(), fs::path("/some/where"));
  unsetenv("RWKV_EMBED_CACHE_DIR");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const std::string saved = xdg ? xdg : "";
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(GemmCacheDir(), fs::path("/xdg/rwkv-embed"));
  if (xdg) {
    setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  } else {
    unsetenv("XDG_CACHE_HOME");
  }
  setenv("RWKV_EMBED_CACHE_DIR", dir_.c_str(), 1);
  const std::string name = GemmCacheFile(dir_, CurrentGemmCacheIdentity()).filename().string();
  EXPECT_TRUE(name.starts_with("gemm-") && name.ends_with(".json") && name.size() == 26) << name;
}

// The busy-machine rule: timings whose threads got under 70% of their wall time as CPU time while
// being preempted (> 50 involuntary switches a second) are not trusted (steady but uniformly
// slow: every path at a tenth of its rate, a wrong winner); a low share alone is a small problem
// leaving a thread idle.
TEST(GemmTimingMachineBusyTest, LowCpuShareWithPreemptionsIsBusy) {
  EXPECT_FALSE(GemmTimingMachineBusy(0.95, 1.0, 1, 500));
  EXPECT_TRUE(GemmTimingMachineBusy(0.5, 1.0, 1, 500));
  EXPECT_FALSE(GemmTimingMachineBusy(0.5, 1.0, 1, 3));  // one thread idle, nobody preempting
  EXPECT_FALSE(GemmTimingMachineBusy(1.9, 1.0, 2, 500));
  EXPECT_TRUE(GemmTimingMachineBusy(1.0, 1.0, 2, 300));  // two threads sharing one core
  EXPECT_TRUE(GemmTimingMachineBusy(0.2, 0.1, 4, 20));
  EXPECT_FALSE(GemmTimingMachineBusy(0.0, 0.0, 2, 0));  // nothing timed: no verdict
}

}  // namespace
}  // namespace rwkv_embed::kernels
