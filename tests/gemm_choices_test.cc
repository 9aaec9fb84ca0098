// One process's GEMM choices installed in another (kernels::ExportGemmChoices /
// InstallGemmChoices): how the ranks of an MPI embed multiply with the same paths.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/gemm_autotune.h"

namespace rwkv_embed::kernels {
namespace {

class GemmChoicesTest : public ::testing::Test {
 protected:
  void SetUp() override { ResetGemmAutotune(); }
  void TearDown() override { ResetGemmAutotune(); }
};

std::string OneChoice(int64_t n, int64_t k, const std::string& path, bool bf16 = false) {
  return R"([{"n":)" + std::to_string(n) + R"(,"k":)" + std::to_string(k) + R"(,"dtype":")" +
         (bf16 ? "BF16" : "F32") + R"(","precision":")" + (bf16 ? "bf16" : "f32") +
         R"(","bucket":-1,"threads":0,"path":")" + path + R"(","gflops":{}}])";
}

TEST_F(GemmChoicesTest, InstalledChoicesAreUsedAndNothingMoreIsMeasured) {
  InstallGemmChoices(OneChoice(64, 32, "portable"));
  const auto table = GemmTuneTable();
  ASSERT_EQ(table.size(), 1u);
  EXPECT_EQ(table[0].path, GemmPath::kPortable);
  EXPECT_EQ(table[0].source, "installed");
  // Export -> install round trip keeps the list.
  const std::string exported = ExportGemmChoices();
  ResetGemmAutotune();
  InstallGemmChoices(exported);
  ASSERT_EQ(GemmTuneTable().size(), 1u);
  EXPECT_EQ(GemmTuneTable()[0].path, GemmPath::kPortable);
  // A shape not in the list: the preference order in every process, never a measurement.
  TuneSeenGemmShapes();
  EXPECT_EQ(GemmAutotuneSeconds(), 0.0);
}

TEST_F(GemmChoicesTest, APathThisCpuCannotRunOrMalformedTextIsAnError) {
  int unavailable = 0;
  for (GemmPath p : kAllGemmPaths) {
    for (const bool bf16 : {false, true}) {
      const DType dtype = bf16 ? DType::kBF16 : DType::kF32;
      const MatMulPrecision precision = bf16 ? MatMulPrecision::kBF16 : MatMulPrecision::kF32;
      if (GemmPathAvailable(p) || !GemmPathAccepts(p, dtype, precision)) continue;
      ++unavailable;
      EXPECT_THROW(InstallGemmChoices(OneChoice(64, 32, std::string(GemmPathName(p)), bf16)),
                   UsageError)
          << GemmPathName(p);
    }
  }
  EXPECT_THROW(InstallGemmChoices("[{\"n\": 1}]"), FormatError);
  EXPECT_THROW(InstallGemmChoices("not json"), FormatError);
  EXPECT_THROW(InstallGemmChoices(OneChoice(64, 32, "no-such-path")), UsageError);
  RecordProperty("unavailable_paths_checked", unavailable);
}

}  // namespace
}  // namespace rwkv_embed::kernels
