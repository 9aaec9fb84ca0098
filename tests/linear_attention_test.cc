// The linear-attention (WKV) recurrence against a float64 scalar reference, for every kernel level
// the CPU has (portable, AVX2, AVX-512: register-blocked at S = 64, the portable loop vectorized
// for the level at other S), plus state carry across calls.
#include "kernels/linear_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>
#include <vector>

#include "kernels/kernel_table.h"

namespace rwkv_embed::kernels {
namespace {

struct Inputs {
  int64_t T, H, S;
  std::vector<float> r, k, v, d, u, state;
  Inputs(int64_t t, int64_t h, int64_t s, uint32_t seed) : T(t), H(h), S(s) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> sym(-1.0f, 1.0f), decay(0.5f, 0.999f);
    auto fill = [&](std::vector<float>& x, int64_t n, auto& dist) {
      x.resize(n);
      for (auto& e : x) e = dist(rng);
    };
    fill(r, T * H * S, sym);
    fill(k, T * H * S, sym);
    fill(v, T * H * S, sym);
    fill(d, T * H * S, decay);
    fill(u, H * S, sym);
    fill(state, H * S * S, sym);
  }
};

// y_t[j] = sum_i r[i] (u[i] k[i] v[j] + M[i][j]);  M[i][j] = k[i] v[j] + d[i] M[i][j]
std::vector<double> Reference(const Inputs& in, std::vector<double>& state) {
  const int64_t A = in.H * in.S;
  std::vector<double> y(in.T * A, 0.0);
  for (int64_t h = 0; h < in.H; ++h) {
    for (int64_t t = 0; t < in.T; ++t) {
      for (int64_t i = 0; i < in.S; ++i) {
        const int64_t c = t * A + h * in.S + i;
        for (int64_t j = 0; j < in.S; ++j) {
          double& m = state[(h * in.S + i) * in.S + j];
          const double vj = in.v[t * A + h * in.S + j];
          y[t * A + h * in.S + j] += in.r[c] * (in.u[h * in.S + i] * in.k[c] * vj + m);
          m = in.k[c] * vj + in.d[c] * m;
        }
      }
    }
  }
  return y;
}

// (head size, kernel level); a level this CPU lacks is skipped by name.
class LinearAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, KernelIsa>> {
 protected:
  void SetUp() override {
    if (std::get<1>(GetParam()) > BestKernelIsa()) {
      GTEST_SKIP() << "kernel level " << KernelIsaName(std::get<1>(GetParam()))
                   << " not available on this CPU";
    }
  }
  int64_t S() const { return std::get<0>(GetParam()); }
  // LinearAttention on this level's kernel.
  void Scan(const float* r, const float* k, const float* v, const float* d, const float* u,
            int64_t T, int64_t H, int64_t stride, float* state, float* y) const {
    const auto head = internal::KernelTableFor(std::get<1>(GetParam())).wkv_head;
    for (int64_t h = 0; h < H; ++h) {
      head(r, k, v, d, u, T, h * S(), S(), stride, state + h * S() * S(), y);
    }
  }
};

TEST_P(LinearAttentionTest, MatchesFloat64Reference) {
  const Inputs in(37, 2, S(), 11);
  std::vector<double> ref_state(in.state.begin(), in.state.end());
  const auto ref = Reference(in, ref_state);
  std::vector<float> y(in.T * in.H * in.S), state = in.state;
  Scan(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), in.T, in.H, in.H * in.S,
       state.data(), y.data());
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(y[i] - ref[i]));
  for (size_t i = 0; i < state.size(); ++i) {
    worst = std::max(worst, std::abs(state[i] - ref_state[i]));
  }
  // FP32 rounding of sums of S terms of magnitude ~1-10: observed <= 3.8e-6 (S = 64).
  EXPECT_LT(worst, 2e-5) << "S=" << in.S;
  std::cout << "S=" << in.S << " " << KernelIsaName(std::get<1>(GetParam()))
            << ": max abs error vs float64: " << worst << "\n";
}

TEST_P(LinearAttentionTest, TwoCallsWithCarriedStateEqualOne) {
  const Inputs in(20, 3, S(), 5);
  const int64_t A = in.H * in.S;
  std::vector<float> y_one(in.T * A), s_one = in.state;
  Scan(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), in.T, in.H, A, s_one.data(),
       y_one.data());
  std::vector<float> y_two(in.T * A), s_two = in.state;
  const int64_t t1 = 7;
  Scan(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), t1, in.H, A, s_two.data(),
       y_two.data());
  const int64_t o = t1 * A;
  Scan(in.r.data() + o, in.k.data() + o, in.v.data() + o, in.d.data() + o, in.u.data(), in.T - t1,
       in.H, A, s_two.data(), y_two.data() + o);
  EXPECT_EQ(y_one, y_two);
  EXPECT_EQ(s_one, s_two);
}

// The public entry point runs the process's table: the best level unless a GEMM path is forced.
TEST(LinearAttentionDispatchTest, PublicEntryPointRunsTheBestLevel) {
  const Inputs in(9, 2, 64, 3);
  const int64_t A = in.H * in.S;
  std::vector<float> y1(in.T * A), s1 = in.state, y2(in.T * A), s2 = in.state;
  LinearAttention(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), in.T, in.H, in.S,
                  A, s1.data(), y1.data());
  for (int64_t h = 0; h < in.H; ++h) {
    internal::KernelTableFor(BestKernelIsa())
        .wkv_head(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), in.T, h * in.S,
                  in.S, A, s2.data() + h * in.S * in.S, y2.data());
  }
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(s1, s2);
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<int64_t, KernelIsa>>& p) {
  return "S" + std::to_string(std::get<0>(p.param)) + "_" +
         std::string(KernelIsaName(std::get<1>(p.param)));
}

// 64: the register-blocked kernels; 32 and 48: the portable loop compiled for each level.
INSTANTIATE_TEST_SUITE_P(HeadSizes, LinearAttentionTest,
                         ::testing::Combine(::testing::Values(64, 32, 48),
                                            ::testing::Values(KernelIsa::kPortable,
                                                              KernelIsa::kAvx2,
                                                              KernelIsa::kAvx512)),
                         ParamName);

}  // namespace
}  // namespace rwkv_embed::kernels
