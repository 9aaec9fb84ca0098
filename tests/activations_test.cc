// Vectorised exp / tanh against scalar libm, at every kernel level the CPU has: glibc documents
// its libmvec variants within 4 ulp.
#include "kernels/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/kernel_table.h"

namespace rwkv_embed::kernels {
namespace {

std::vector<float> Range(float lo, float hi, int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = lo + (hi - lo) * static_cast<float>(i) / (n - 1);
  return v;
}

// |got - want| in units of the float spacing at want.
double Ulps(float got, float want) {
  const double spacing = std::nextafter(std::abs(want), INFINITY) - std::abs(want);
  return std::abs(static_cast<double>(got) - want) / spacing;
}

class ActivationsTest : public ::testing::TestWithParam<KernelIsa> {
 protected:
  void SetUp() override {
    if (GetParam() > BestKernelIsa()) {
      GTEST_SKIP() << "kernel level " << KernelIsaName(GetParam()) << " not available on this CPU";
    }
  }
  const internal::KernelTable& Table() const { return internal::KernelTableFor(GetParam()); }
};

TEST_P(ActivationsTest, ExpWithinFourUlpOfLibmIncludingTails) {
  auto x = Range(-87.0f, 88.0f, 10007);  // odd length: exercises the masked tail
  const auto ref = x;
  Table().exp(x.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, Ulps(x[i], std::exp(ref[i])));
  EXPECT_LE(worst, 4.0);
  std::vector<float> special = {-INFINITY, INFINITY, std::numeric_limits<float>::quiet_NaN(),
                                -200.0f,   200.0f,   0.0f};
  Table().exp(special.data(), static_cast<int64_t>(special.size()));
  EXPECT_EQ(special[0], 0.0f);
  EXPECT_EQ(special[1], INFINITY);
  EXPECT_TRUE(std::isnan(special[2]));
  EXPECT_EQ(special[3], 0.0f);
  EXPECT_EQ(special[4], INFINITY);
  EXPECT_EQ(special[5], 1.0f);
}

TEST_P(ActivationsTest, TanhWithinFourUlpOfLibm) {
  auto x = Range(-12.0f, 12.0f, 4099);
  x.push_back(1e-30f);
  x.push_back(-3e-8f);
  const auto ref = x;
  Table().tanh(x.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, Ulps(x[i], std::tanh(ref[i])));
  EXPECT_LE(worst, 4.0);
  std::vector<float> special = {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY};
  Table().tanh(special.data(), 3);
  EXPECT_TRUE(std::isnan(special[0]));
  EXPECT_EQ(special[1], 1.0f);
  EXPECT_EQ(special[2], -1.0f);
}

TEST(ActivationsDispatchTest, PublicFunctionsRunTheBestLevel) {
  std::vector<float> a = Range(-5.0f, 5.0f, 37), b = a, c = a, d = a;
  ExpInPlace(a.data(), 37);
  internal::KernelTableFor(BestKernelIsa()).exp(b.data(), 37);
  EXPECT_EQ(a, b);
  TanhInPlace(c.data(), 37);
  internal::KernelTableFor(BestKernelIsa()).tanh(d.data(), 37);
  EXPECT_EQ(c, d);
}

std::string IsaName(const ::testing::TestParamInfo<KernelIsa>& p) {
  return std::string(KernelIsaName(p.param));
}

INSTANTIATE_TEST_SUITE_P(Levels, ActivationsTest,
                         ::testing::Values(KernelIsa::kPortable, KernelIsa::kAvx2,
                                           KernelIsa::kAvx512),
                         IsaName);

}  // namespace
}  // namespace rwkv_embed::kernels
