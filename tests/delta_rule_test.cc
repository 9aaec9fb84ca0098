// The generalised delta-rule scan (RWKV-7's WKV) against a float64 reference, for the AVX-512
// N = 64 kernel and the portable one (any N), plus state carry across calls and packed sequences.
#include "kernels/delta_rule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>
#include <vector>

namespace rwkv_embed::kernels {
namespace {

// RWKV-7-like inputs: decays in (0.545, 1), a = -kk and b = kk * alpha with kk unit-norm per
// head, so the state stays bounded as in the model.
struct Inputs {
  int64_t T, H, N;
  std::vector<float> r, w, k, v, a, b, state;
  Inputs(int64_t t, int64_t h, int64_t n, uint32_t seed) : T(t), H(h), N(n) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> sym(-1.0f, 1.0f), decay(0.545f, 0.999f), rate(0.0f, 1.0f);
    const int64_t size = T * H * N;
    auto fill = [&](std::vector<float>& x, int64_t count, auto& dist) {
      x.resize(count);
      for (auto& e : x) e = dist(rng);
    };
    fill(r, size, sym);
    fill(w, size, decay);
    fill(k, size, sym);
    fill(v, size, sym);
    fill(a, size, sym);
    fill(b, size, rate);
    for (int64_t row = 0; row < T * H; ++row) {  // a = -kk (unit norm), b = kk * alpha
      double ss = 0;
      for (int64_t j = 0; j < N; ++j) ss += static_cast<double>(a[row * N + j]) * a[row * N + j];
      const auto inv = static_cast<float>(1.0 / std::sqrt(ss));
      for (int64_t j = 0; j < N; ++j) {
        const float kk = a[row * N + j] * inv;
        a[row * N + j] = -kk;
        b[row * N + j] *= kk;
      }
    }
    fill(state, H * N * N, sym);
  }
};

// S = S diag(w) + (S a) b^T + v k^T; y = S r  (S[i][j]: value i, key j), all in float64.
std::vector<double> Reference(const Inputs& in, std::vector<double>& state) {
  const int64_t C = in.H * in.N;
  std::vector<double> y(in.T * C, 0.0);
  for (int64_t h = 0; h < in.H; ++h) {
    for (int64_t t = 0; t < in.T; ++t) {
      const int64_t o = t * C + h * in.N;
      for (int64_t i = 0; i < in.N; ++i) {
        double* row = state.data() + (h * in.N + i) * in.N;
        double sa = 0;
        for (int64_t j = 0; j < in.N; ++j) sa += row[j] * in.a[o + j];
        double yi = 0;
        for (int64_t j = 0; j < in.N; ++j) {
          row[j] = row[j] * in.w[o + j] + sa * in.b[o + j] + in.v[o + i] * in.k[o + j];
          yi += row[j] * in.r[o + j];
        }
        y[o + i] = yi;
      }
    }
  }
  return y;
}

using HeadFn = void (*)(const float*, const float*, const float*, const float*, const float*,
                        const float*, int64_t, int64_t, int64_t, int64_t, float*, float*);

void RunHeads(HeadFn f, const Inputs& in, std::vector<float>& state, std::vector<float>& y) {
  y.assign(in.T * in.H * in.N, 0.0f);
  for (int64_t h = 0; h < in.H; ++h) {
    f(in.r.data(), in.w.data(), in.k.data(), in.v.data(), in.a.data(), in.b.data(), in.T, h, in.N,
      in.H * in.N, state.data() + h * in.N * in.N, y.data());
  }
}

// Max |got - ref| / (1 + |ref|).
double MaxError(const std::vector<float>& got, const std::vector<double>& ref) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - ref[i]) / (1.0 + std::fabs(ref[i])));
  }
  return worst;
}

class DeltaRuleTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(DeltaRuleTest, BothPathsMatchFloat64Reference) {
  const Inputs in(53, 2, GetParam(), 7);
  std::vector<double> ref_state(in.state.begin(), in.state.end());
  const auto ref_y = Reference(in, ref_state);
  for (auto [name, f] : {std::pair<const char*, HeadFn>{"dispatch", &DeltaRuleHead},
                         std::pair<const char*, HeadFn>{"portable", &DeltaRuleHeadPortable}}) {
    std::vector<float> state = in.state, y;
    RunHeads(f, in, state, y);
    const double ey = MaxError(y, ref_y), es = MaxError(state, ref_state);
    // 53 steps of FP32 arithmetic on O(1) values: a few ulps of the state's magnitude per step.
    EXPECT_LT(ey, 2e-5) << name << " N=" << in.N;
    EXPECT_LT(es, 2e-5) << name << " N=" << in.N;
    std::cout << name << " N=" << in.N << ": max error y " << ey << ", state " << es << "\n";
  }
}

// Two calls with the state carried equal one call, bit for bit, on the dispatched path.
TEST_P(DeltaRuleTest, StateCarriesAcrossCallsExactly) {
  const Inputs in(40, 1, GetParam(), 3);
  std::vector<float> whole_state = in.state, whole_y;
  RunHeads(&DeltaRuleHead, in, whole_state, whole_y);
  std::vector<float> state = in.state, y(in.T * in.N);
  const int64_t split = 17, C = in.N;
  DeltaRuleHead(in.r.data(), in.w.data(), in.k.data(), in.v.data(), in.a.data(), in.b.data(), split,
                0, in.N, C, state.data(), y.data());
  const int64_t o = split * C;
  DeltaRuleHead(in.r.data() + o, in.w.data() + o, in.k.data() + o, in.v.data() + o, in.a.data() + o,
                in.b.data() + o, in.T - split, 0, in.N, C, state.data(), y.data() + o);
  EXPECT_EQ(state, whole_state);
  EXPECT_EQ(y, whole_y);
}

// DeltaRule over packed sequences equals each sequence on its own (threads over sequence, head).
TEST_P(DeltaRuleTest, PackedSequencesEqualSeparateOnes) {
  const Inputs in(300, 3, GetParam(), 5);
  const std::vector<int64_t> offsets = {0, 1, 120, 121, 300};
  const int64_t C = in.H * in.N, n_seq = 4;
  std::vector<std::vector<float>> states(n_seq, in.state);
  std::vector<float*> ptrs;
  for (auto& s : states) ptrs.push_back(s.data());
  std::vector<float> y(in.T * C);
  DeltaRule(in.r.data(), in.w.data(), in.k.data(), in.v.data(), in.a.data(), in.b.data(), offsets,
            in.H, in.N, ptrs.data(), y.data());
  for (int64_t s = 0; s < n_seq; ++s) {
    std::vector<float> state = in.state, ys((offsets[s + 1] - offsets[s]) * C);
    const int64_t o = offsets[s] * C;
    for (int64_t h = 0; h < in.H; ++h) {
      DeltaRuleHead(in.r.data() + o, in.w.data() + o, in.k.data() + o, in.v.data() + o,
                    in.a.data() + o, in.b.data() + o, offsets[s + 1] - offsets[s], h, in.N, C,
                    state.data() + h * in.N * in.N, ys.data());
    }
    EXPECT_EQ(state, states[s]) << "sequence " << s;
    EXPECT_TRUE(std::equal(ys.begin(), ys.end(), y.begin() + o)) << "sequence " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(HeadSizes, DeltaRuleTest, ::testing::Values(16, 32, 64));

}  // namespace
}  // namespace rwkv_embed::kernels
