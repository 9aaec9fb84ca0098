// --gemm-path and RWKV_EMBED_GEMM_PATH on the command line, and `info --gemm`.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "io/npy.h"
#include "kernels/gemm.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using testing::RunCli;

TEST(CliGemmTest, InfoGemmShowsTheForcedPathAndItsKernelLevel) {
  auto run = RunCli({"info", "--gemm", "--gemm-path", "portable"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("forced GEMM path: portable"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("WKV scan, activations, norms: portable"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("GEMM paths available: portable"), std::string::npos) << run.out;
  run = RunCli({"info", "--gemm"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("forced GEMM path: none"), std::string::npos) << run.out;
}

TEST(CliGemmTest, InfoGemmWithAModelTabulatesEveryShape) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto run = RunCli({"info", "--gemm", "--model", dir.parent_path().string(), "--threads",
                           "1", "--precision", "bf16"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // The tiny model's r/k/v/g/o weights are 128 x 128: one choice for every m and thread count.
  EXPECT_NE(run.out.find("| 128 x 128 | BF16 | bf16 | any m | any |"), std::string::npos)
      << run.out;
  EXPECT_EQ(run.out.find("m<=8"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("| f32 |"), std::string::npos) << run.out;
}

TEST(CliGemmTest, BadOrUnavailablePathsAreUsageErrors) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-f32/model.safetensors");
  const auto tmp = testing::TempDir();
  const std::string model = dir.parent_path().string(), out = (tmp / "o.npy").string();
  auto run = RunCli({"embed", "--model", model, "--output", out, "--gemm-path", "fastest"}, "a\n");
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("avx2-f32"), std::string::npos) << run.err;  // lists the names
  // BF16 math cannot take F32 weights (nor --precision f32): said, not silently replaced.
  for (kernels::GemmPath p : {kernels::GemmPath::kOneDnnBf16, kernels::GemmPath::kAvx512Bf16}) {
    if (!kernels::GemmPathAvailable(p)) continue;
    run = RunCli({"embed", "--model", model, "--output", out, "--precision", "bf16", "--gemm-path",
                  std::string(kernels::GemmPathName(p))},
                 "a\n");
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find("needs BF16 weights"), std::string::npos) << run.err;
  }
  if (!kernels::GemmPathAvailable(kernels::GemmPath::kAmxBf16)) {
    run = RunCli({"info", "--gemm", "--gemm-path", "amx-bf16"});
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find("not available"), std::string::npos) << run.err;
  }
  setenv("RWKV_EMBED_GEMM_PATH", "nonsense", 1);
  run = RunCli({"embed", "--model", model, "--output", out}, "a\n");
  unsetenv("RWKV_EMBED_GEMM_PATH");
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("RWKV_EMBED_GEMM_PATH"), std::string::npos) << run.err;
}

TEST(CliGemmTest, ForcedFp32PathsGiveTheSameEmbeddingsAsAuto) {
  // Every FP32 path is held to 2e-5 + 1e-4 |ref| of the float64 reference per hidden state
  // (model_golden_test.cc), so mean-pooled embeddings of two paths agree within twice that,
  // whichever path and kernel level runs them.
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto tmp = testing::TempDir();
  const std::string model = dir.parent_path().string();
  auto embed = [&](const std::string& path) {
    const std::string out = (tmp / (path + ".npy")).string();
    const auto run =
        RunCli({"embed", "--model", model, "--output", out, "--layers", "all", "--gemm-path", path},
               "a first sentence\nand another one, a little longer\n");
    EXPECT_EQ(run.exit_code, 0) << path << ": " << run.err;
    return ReadNpyF32(out).data;
  };
  const auto ref = embed("auto");
  ASSERT_FALSE(ref.empty());
  for (kernels::GemmPath p :
       {kernels::GemmPath::kPortable, kernels::GemmPath::kAvx2F32, kernels::GemmPath::kAvx512F32}) {
    if (!kernels::GemmPathAvailable(p)) continue;
    const auto got = embed(std::string(kernels::GemmPathName(p)));
    ASSERT_EQ(got.size(), ref.size());
    double worst = 0;  // |difference| / bound, <= 1 required
    for (size_t i = 0; i < got.size(); ++i) {
      const double bound = 2 * (2e-5 + 1e-4 * std::abs(ref[i]));
      worst = std::max(worst, std::abs(double{got[i]} - ref[i]) / bound);
    }
    EXPECT_LE(worst, 1.0) << kernels::GemmPathName(p);
  }
}

}  // namespace
}  // namespace rwkv_embed
