// The linear-attention (WKV) recurrence against a float64 scalar reference, for the AVX-512
// S = 64 kernel and the portable one (other S), plus state carry across calls.
#include "kernels/linear_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>
#include <vector>

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

class LinearAttentionTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(LinearAttentionTest, MatchesFloat64Reference) {
  const Inputs in(37, 2, GetParam(), 11);
  std::vector<double> ref_state(in.state.begin(), in.state.end());
  const auto ref = Reference(in, ref_state);
  std::vector<float> y(in.T * in.H * in.S), state = in.state;
  LinearAttention(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), in.T, in.H, in.S,
                  in.H * in.S, state.data(), y.data());
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(y[i] - ref[i]));
  for (size_t i = 0; i < state.size(); ++i) {
    worst = std::max(worst, std::abs(state[i] - ref_state[i]));
  }
  // FP32 rounding of sums of S terms of magnitude ~1-10: observed <= 3.8e-6 (S = 64).
  EXPECT_LT(worst, 2e-5) << "S=" << in.S;
  std::cout << "S=" << in.S << " max abs error vs float64: " << worst << "\n";
}

TEST_P(LinearAttentionTest, TwoCallsWithCarriedStateEqualOne) {
  const Inputs in(20, 3, GetParam(), 5);
  const int64_t A = in.H * in.S;
  std::vector<float> y_one(in.T * A), s_one = in.state;
  LinearAttention(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), in.T, in.H, in.S,
                  A, s_one.data(), y_one.data());
  std::vector<float> y_two(in.T * A), s_two = in.state;
  const int64_t t1 = 7;
  LinearAttention(in.r.data(), in.k.data(), in.v.data(), in.d.data(), in.u.data(), t1, in.H, in.S,
                  A, s_two.data(), y_two.data());
  const int64_t o = t1 * A;
  LinearAttention(in.r.data() + o, in.k.data() + o, in.v.data() + o, in.d.data() + o, in.u.data(),
                  in.T - t1, in.H, in.S, A, s_two.data(), y_two.data() + o);
  EXPECT_EQ(y_one, y_two);
  EXPECT_EQ(s_one, s_two);
}

// 64: the AVX-512 register-blocked kernel (where the CPU has it); 32 and 48: the portable one.
INSTANTIATE_TEST_SUITE_P(HeadSizes, LinearAttentionTest, ::testing::Values(64, 32, 48));

}  // namespace
}  // namespace rwkv_embed::kernels
