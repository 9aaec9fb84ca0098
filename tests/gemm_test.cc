#include "kernels/gemm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_internal.h"

namespace rwkv_embed::kernels {
namespace {

// Every (weight dtype, precision) a path takes. kAuto takes all of them.
struct Variant {
  GemmPath path;
  DType wtype;
  MatMulPrecision precision;
};

std::vector<Variant> VariantsOf(GemmPath p) {
  std::vector<Variant> v;
  for (DType t : {DType::kF32, DType::kBF16}) {
    for (MatMulPrecision q : {MatMulPrecision::kF32, MatMulPrecision::kBF16}) {
      if (p == GemmPath::kAuto || GemmPathAccepts(p, t, q)) v.push_back({p, t, q});
    }
  }
  return v;
}

std::string Describe(const Variant& v) {
  return std::string(GemmPathName(v.path)) + " W=" + std::string(DTypeName(v.wtype)) +
         (v.precision == MatMulPrecision::kF32 ? " prec=f32" : " prec=bf16");
}

// Whether `path` (never kAuto) multiplies with x rounded to BF16 for this variant (then its error
// bound is the BF16 one).
bool RoundsX(GemmPath path, const Variant& v) {
  if (GemmPathRoundsToBf16(path)) return true;
  return path == GemmPath::kPortable && v.precision == MatMulPrecision::kBF16 &&
         v.wtype == DType::kBF16;
}

// Random problem; the weights are stored in `wtype` and the reference uses exactly those values.
struct Problem {
  int64_t m, n, k;
  std::vector<float> x;
  std::vector<float> w_f32;      // the weight values (BF16-representable when wtype is BF16)
  std::vector<uint16_t> w_bf16;  // the same values as stored BF16
  std::vector<double> ref;       // sum_c x w in double
  std::vector<double> abs_sum;   // sum_c |x w|: scale of the rounding error

  Problem(int64_t m_, int64_t n_, int64_t k_, uint32_t seed) : m(m_), n(n_), k(k_) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> ux(-2.0f, 2.0f), uw(-0.5f, 0.5f);
    x.resize(m * k);
    for (auto& v : x) v = ux(rng);
    w_f32.resize(n * k);
    w_bf16.resize(n * k);
    for (int64_t i = 0; i < n * k; ++i) {
      w_bf16[i] = F32ToBf16(uw(rng));
      w_f32[i] = Bf16ToF32(w_bf16[i]);  // same values whichever dtype is tested
    }
    ref.assign(m * n, 0.0);
    abs_sum.assign(m * n, 0.0);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0, a = 0;
        for (int64_t c = 0; c < k; ++c) {
          const double p = double{x[i * k + c]} * double{w_f32[j * k + c]};
          s += p;
          a += std::abs(p);
        }
        ref[i * n + j] = s;
        abs_sum[i * n + j] = a;
      }
    }
  }

  WeightMatrix Weights(DType t) const {
    return {t, t == DType::kBF16 ? static_cast<const void*>(w_bf16.data()) : w_f32.data(), n, k};
  }
};

// Error bounds, relative to S = sum_k |x_k w_k| (>= |y|):
//  FP32 math: 1e-5 * S, the required accuracy. The deterministic worst case of summing k terms
//    in FP32 is ~k * 2^-24 * S (1.2e-4 S at k = 2048), but rounding errors have random signs and
//    grow like sqrt(k) * 2^-24 * S (< 3e-6 S here); observed values are printed below.
//  BF16 math: x is rounded to nearest BF16 (8 significant bits, relative error <= 2^-8 per
//    element), so |err| <= 2^-8 * S, plus the FP32 accumulation term above.
double Bound(bool rounds_x) { return (rounds_x ? std::ldexp(1.0, -8) : 0.0) + 1e-5; }

// Runs the variant and returns max |y - ref| / S, failing on any element beyond the bound.
double CheckVariant(const Problem& p, const Variant& v) {
  std::vector<float> y(p.m * p.n, std::numeric_limits<float>::quiet_NaN());
  MatMulTWithPath(v.path, p.x.data(), p.m, p.Weights(v.wtype), y.data(), v.precision);
  const GemmPath ran =
      v.path == GemmPath::kAuto ? SelectGemmPath(p.m, p.Weights(v.wtype), v.precision) : v.path;
  const double bound = Bound(RoundsX(ran, v));
  double worst = 0;
  int64_t bad = 0;
  for (int64_t i = 0; i < p.m * p.n; ++i) {
    const double err = std::abs(double{y[i]} - p.ref[i]);
    const double scale = std::max(p.abs_sum[i], 1e-30);
    if (!(err <= bound * scale)) ++bad;  // NaN counts as a violation
    worst = std::max(worst, std::isfinite(err) ? err / scale : INFINITY);
  }
  EXPECT_EQ(bad, 0) << Describe(v) << " (ran " << GemmPathName(ran) << ") m=" << p.m << " n=" << p.n
                    << " k=" << p.k << " max |err|/S=" << worst << " bound=" << bound;
  return worst;
}

// Every test below runs once per path; a path this CPU or build lacks is skipped by name. kAuto
// is MatMulT as the model calls it (the measured choice).
class GemmPathTest : public ::testing::TestWithParam<GemmPath> {
 protected:
  void SetUp() override {
    if (!GemmPathAvailable(GetParam())) {
      GTEST_SKIP() << "path " << GemmPathName(GetParam()) << " not available on this CPU";
    }
  }
};

TEST_P(GemmPathTest, HandWorkedExampleIsExact) {
  // x = [[1, 2], [3, 4]], W = [[1, 0], [0, 1], [1, 1]] -> y = [[1, 2, 3], [3, 4, 7]]; every value
  // is exact in BF16, so every path must give it exactly.
  const std::vector<float> x = {1, 2, 3, 4};
  const std::vector<float> wf = {1, 0, 0, 1, 1, 1};
  std::vector<uint16_t> wb;
  for (float v : wf) wb.push_back(F32ToBf16(v));
  for (const Variant& v : VariantsOf(GetParam())) {
    const WeightMatrix w{
        v.wtype, v.wtype == DType::kBF16 ? static_cast<const void*>(wb.data()) : wf.data(), 3, 2};
    std::vector<float> y(6, -1.0f);
    MatMulTWithPath(v.path, x.data(), 2, w, y.data(), v.precision);
    EXPECT_EQ(y, (std::vector<float>{1, 2, 3, 3, 4, 7})) << Describe(v);
  }
}

TEST_P(GemmPathTest, MatchesDoubleReferenceOnOddShapes) {
  struct Shape {
    int64_t m, n, k;
  };
  // Odd m (1, 3, 17), n not a multiple of 16 (or of the 4-wide tiles), k not a multiple of 32,
  // LoRA-like k = 32 / 160, the tiny models' C = 64 / 128 and intermediate 200, k beyond the k
  // blocks (1100, 2100), and m beyond one m block (300 with k = 2048) with odd tile counts.
  const std::vector<Shape> shapes = {{1, 16, 32},   {1, 7, 5},      {3, 17, 33},    {17, 35, 160},
                                     {17, 64, 32},  {5, 33, 100},   {37, 48, 64},   {33, 130, 128},
                                     {20, 64, 64},  {13, 200, 64},  {7, 64, 200},   {40, 20, 1100},
                                     {19, 9, 2100}, {18, 50, 2080}, {300, 48, 2048}};
  std::vector<Variant> variants = VariantsOf(GetParam());
  std::vector<double> worst(variants.size(), 0.0);
  uint32_t seed = 1;
  for (const Shape& s : shapes) {
    const Problem p(s.m, s.n, s.k, seed++);
    for (size_t i = 0; i < variants.size(); ++i) {
      worst[i] = std::max(worst[i], CheckVariant(p, variants[i]));
    }
  }
  for (size_t i = 0; i < variants.size(); ++i) {
    std::printf("[gemm] %-36s max |err|/S = %.3g\n", Describe(variants[i]).c_str(), worst[i]);
  }
}

// Every variant promises bit-identical rows whatever the thread count and batch size: each forced
// path computes a row the same way for any m, and the measured choice (kAuto) is one path for
// every m and thread count (gemm_autotune.h).

TEST_P(GemmPathTest, ThreadCountDoesNotChangeResults) {
  // Threads split n; each output is computed by the same instruction sequence either way. The
  // problem is big enough (15M multiply-adds) for every path to go parallel.
  const Problem p(70, 208, 1024, 99);
  for (const Variant& v : VariantsOf(GetParam())) {
    std::vector<float> y1(p.m * p.n), y2(p.m * p.n);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    MatMulTWithPath(v.path, p.x.data(), p.m, p.Weights(v.wtype), y1.data(), v.precision);
    omp_set_num_threads(2);
    MatMulTWithPath(v.path, p.x.data(), p.m, p.Weights(v.wtype), y2.data(), v.precision);
    omp_set_num_threads(saved);
    EXPECT_EQ(y1, y2) << Describe(v);
  }
}

TEST_P(GemmPathTest, RowResultsDoNotDependOnHowManyRowsAreMultiplied) {
  // A row of y is the same bits whether it is multiplied alone, in a small batch or at any
  // position of a large one: embeddings must not depend on what a sentence is packed with.
  const Problem p(45, 70, 160, 5);
  for (const Variant& v : VariantsOf(GetParam())) {
    std::vector<float> all(p.m * p.n);
    MatMulTWithPath(v.path, p.x.data(), p.m, p.Weights(v.wtype), all.data(), v.precision);
    for (int64_t start : {0, 1, 17, 44}) {
      for (int64_t rows : {1, 3, 16}) {
        if (start + rows > p.m) continue;
        std::vector<float> part(rows * p.n);
        MatMulTWithPath(v.path, p.x.data() + start * p.k, rows, p.Weights(v.wtype), part.data(),
                        v.precision);
        EXPECT_TRUE(std::equal(part.begin(), part.end(), all.begin() + start * p.n))
            << Describe(v) << " rows [" << start << ", " << start + rows << ")";
      }
    }
  }
}

TEST_P(GemmPathTest, NanInInputPropagatesToItsRowOnly) {
  Problem p(20, 40, 96, 7);
  p.x[5 * p.k + 17] = std::numeric_limits<float>::quiet_NaN();
  for (const Variant& v : VariantsOf(GetParam())) {
    std::vector<float> y(p.m * p.n);
    MatMulTWithPath(v.path, p.x.data(), p.m, p.Weights(v.wtype), y.data(), v.precision);
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t j = 0; j < p.n; ++j) {
        if (i == 5) {
          EXPECT_TRUE(std::isnan(y[i * p.n + j])) << Describe(v) << " at " << i << "," << j;
        } else {
          EXPECT_TRUE(std::isfinite(y[i * p.n + j])) << Describe(v) << " at " << i << "," << j;
        }
      }
    }
  }
}

TEST(GemmTest, AutoSelectsAnAvailablePath) {
  const Problem p(4, 32, 64, 3);
  for (DType t : {DType::kF32, DType::kBF16}) {
    for (MatMulPrecision q : {MatMulPrecision::kF32, MatMulPrecision::kBF16}) {
      const GemmPath path = SelectGemmPath(p.m, p.Weights(t), q);
      EXPECT_NE(path, GemmPath::kAuto);
      EXPECT_TRUE(GemmPathAvailable(path)) << GemmPathName(path);
      EXPECT_TRUE(GemmPathAccepts(path, t, q)) << GemmPathName(path);
      // kF32 must never pick a path that rounds x.
      if (q == MatMulPrecision::kF32) {
        EXPECT_FALSE(GemmPathRoundsToBf16(path));
      }
    }
  }
}

TEST(GemmTest, RejectsUnsupportedRequests) {
  const std::vector<float> x(4, 1.0f), wf(4, 1.0f);
  std::vector<float> y(4);
  const WeightMatrix f32{DType::kF32, wf.data(), 2, 2};
  std::vector<uint16_t> wb(4, F32ToBf16(1.0f));
  const WeightMatrix bf16{DType::kBF16, wb.data(), 2, 2};
  for (GemmPath path : kAllGemmPaths) {
    if (!GemmPathAvailable(path)) continue;
    if (GemmPathRoundsToBf16(path)) {
      // BF16 math needs BF16 weights, and a kBF16 request.
      EXPECT_THROW(MatMulTWithPath(path, x.data(), 2, f32, y.data(), MatMulPrecision::kBF16),
                   UsageError);
      EXPECT_THROW(MatMulTWithPath(path, x.data(), 2, bf16, y.data(), MatMulPrecision::kF32),
                   UsageError);
    }
    if (path == GemmPath::kOneDnnF32) {
      EXPECT_THROW(MatMulTWithPath(path, x.data(), 2, bf16, y.data(), MatMulPrecision::kF32),
                   UsageError);
    }
  }
  const WeightMatrix f16{DType::kF16, wf.data(), 2, 1};
  EXPECT_THROW(MatMulT(x.data(), 2, f16, y.data()), UsageError);
}

TEST(GemmTest, PathNamesRoundTripAndUnknownNamesAreUsageErrors) {
  EXPECT_EQ(ParseGemmPath("auto"), GemmPath::kAuto);
  for (GemmPath p : kAllGemmPaths) EXPECT_EQ(ParseGemmPath(GemmPathName(p)), p);
  try {
    ParseGemmPath("avx512");
    ADD_FAILURE() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("avx2-f32"), std::string::npos) << e.what();
  }
}

TEST(GemmTest, ForcedPathIsUsedAndCapsTheOtherKernels) {
  const Problem p(4, 32, 64, 3);
  for (GemmPath path : kAllGemmPaths) {
    if (!GemmPathAvailable(path)) {
      EXPECT_THROW(ForceGemmPath(path), UsageError) << GemmPathName(path);
      continue;
    }
    ForceGemmPath(path);
    EXPECT_EQ(ForcedGemmPath(), path);
    const DType t = path == GemmPath::kOneDnnF32 ? DType::kF32 : DType::kBF16;
    EXPECT_EQ(SelectGemmPath(p.m, p.Weights(t), MatMulPrecision::kBF16), path);
    const KernelIsa isa = ActiveKernelIsa();
    const KernelIsa want = path == GemmPath::kPortable  ? KernelIsa::kPortable
                           : path == GemmPath::kAvx2F32 ? KernelIsa::kAvx2
                                                        : BestKernelIsa();
    EXPECT_EQ(isa, want) << GemmPathName(path);
  }
  ForceGemmPath(GemmPath::kAuto);
  EXPECT_EQ(ForcedGemmPath(), GemmPath::kAuto);
  EXPECT_EQ(ActiveKernelIsa(), BestKernelIsa());
}

// A server's packed batches bring a new m with almost every batch; each oneDNN primitive holds its
// JIT-compiled kernels, so the cache must stay bounded, and a primitive evicted and made again
// must give the same bits.
TEST(GemmTest, OneDnnPrimitiveCacheStaysBoundedAndRecreatesIdentically) {
  const int64_t rows = 3 * static_cast<int64_t>(internal::kOneDnnPrimitiveCacheCapacity);
  const Problem p(rows, 24, 40, 11);
  bool ran = false;
  for (GemmPath path : {GemmPath::kOneDnnF32, GemmPath::kOneDnnBf16}) {
    if (!GemmPathAvailable(path)) {
      std::printf("[gemm] %s skipped: not available on this CPU/build\n",
                  std::string(GemmPathName(path)).c_str());
      continue;
    }
    ran = true;
    const DType t = path == GemmPath::kOneDnnF32 ? DType::kF32 : DType::kBF16;
    const MatMulPrecision q =
        path == GemmPath::kOneDnnF32 ? MatMulPrecision::kF32 : MatMulPrecision::kBF16;
    std::vector<float> first(5 * p.n), again(5 * p.n), y(rows * p.n);
    MatMulTWithPath(path, p.x.data(), 5, p.Weights(t), first.data(), q);
    for (int64_t m = 1; m <= rows; ++m) {
      MatMulTWithPath(path, p.x.data(), m, p.Weights(t), y.data(), q);
      ASSERT_LE(internal::OneDnnCachedPrimitives(), internal::kOneDnnPrimitiveCacheCapacity)
          << GemmPathName(path) << " m=" << m;
    }
    EXPECT_EQ(internal::OneDnnCachedPrimitives(), internal::kOneDnnPrimitiveCacheCapacity);
    MatMulTWithPath(path, p.x.data(), 5, p.Weights(t), again.data(), q);  // evicted long ago
    EXPECT_EQ(first, again) << GemmPathName(path);
  }
  if (!ran) GTEST_SKIP() << "no oneDNN path available in this build/CPU";
}

std::string PathTestName(const ::testing::TestParamInfo<GemmPath>& param) {
  std::string name(GemmPathName(param.param));
  for (char& c : name) c = c == '-' ? '_' : c;
  return name;
}

INSTANTIATE_TEST_SUITE_P(Paths, GemmPathTest,
                         ::testing::Values(GemmPath::kAuto, GemmPath::kPortable, GemmPath::kAvx2F32,
                                           GemmPath::kAvx512F32, GemmPath::kAvx512Bf16,
                                           GemmPath::kAmxBf16, GemmPath::kOneDnnBf16,
                                           GemmPath::kOneDnnF32),
                         PathTestName);

}  // namespace
}  // namespace rwkv_embed::kernels
