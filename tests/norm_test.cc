// Layer/group normalisation against a float64 reference, at every kernel level the CPU has.
#include "kernels/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.h"

namespace rwkv_embed::kernels {
namespace {

// (x - mean) / sqrt(var + eps) * w + b in double, biased variance.
std::vector<double> Reference(const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& b, double eps) {
  const auto n = static_cast<double>(x.size());
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= n;
  for (float v : x) var += (v - mean) * (v - mean);
  var /= n;
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - mean) / std::sqrt(var + eps) * w[i] + b[i];
  return out;
}

class NormTest : public ::testing::TestWithParam<KernelIsa> {
 protected:
  void SetUp() override {
    if (GetParam() > BestKernelIsa()) {
      GTEST_SKIP() << "kernel level " << KernelIsaName(GetParam()) << " not available on this CPU";
    }
  }
};

TEST_P(NormTest, SliceMatchesFloat64ReferenceAndMayAlias) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 5.0f);
  // Odd sizes exercise the vector tails; 2048 is Finch-1B6's C; 64 a head.
  for (int64_t n : {1, 7, 64, 333, 2048}) {
    std::vector<float> x(n), w(n), b(n);
    for (auto* v : {&x, &w, &b}) {
      for (auto& e : *v) e = u(rng);
    }
    const auto ref = Reference(x, w, b, 1e-5);
    std::vector<float> out(n);
    internal::KernelTableFor(GetParam())
        .norm_slice(x.data(), n, w.data(), b.data(), 1e-5, out.data());
    // FP32 roundings of mean, (x - mean), * inv, * w and + b: a few 2^-24 of each term's size.
    double mean = 0, inv = 0;
    for (float v : x) mean += v / static_cast<double>(n);
    for (float v : x) inv += (v - mean) * (v - mean) / static_cast<double>(n);
    inv = 1.0 / std::sqrt(inv + 1e-5);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double scale =
          (std::abs(x[i]) + std::abs(mean)) * inv * std::abs(w[i]) + std::abs(b[i]);
      worst = std::max(worst, std::abs(out[i] - ref[i]) / scale);
    }
    EXPECT_LT(worst, 8 * 0x1p-24) << "n=" << n;
    internal::KernelTableFor(GetParam())
        .norm_slice(x.data(), n, w.data(), b.data(), 1e-5, x.data());
    EXPECT_EQ(x, out) << "in place, n=" << n;
  }
}

TEST(NormDispatchTest, GroupNormIsLayerNormPerGroup) {
  const int64_t rows = 3, groups = 4, size = 64, dim = groups * size;
  std::vector<float> x(rows * dim), w(dim), b(dim);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto* v : {&x, &w, &b}) {
    for (auto& e : *v) e = u(rng);
  }
  std::vector<float> g(rows * dim), l(rows * dim);
  GroupNormRows(x.data(), rows, groups, size, w.data(), b.data(), 1e-5, g.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t q = 0; q < groups; ++q) {
      const int64_t o = r * dim + q * size;
      LayerNormRows(x.data() + o, 1, size, w.data() + q * size, b.data() + q * size, 1e-5,
                    l.data() + o);
    }
  }
  EXPECT_EQ(g, l);
}

std::string IsaName(const ::testing::TestParamInfo<KernelIsa>& p) {
  return std::string(KernelIsaName(p.param));
}

INSTANTIATE_TEST_SUITE_P(Levels, NormTest,
                         ::testing::Values(KernelIsa::kPortable, KernelIsa::kAvx2,
                                           KernelIsa::kAvx512),
                         IsaName);

}  // namespace
}  // namespace rwkv_embed::kernels
