// The layer-analysis estimators (src/analysis) on synthetic data with known answers.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "analysis/linalg.h"
#include "analysis/statistics.h"
#include "analysis/token_statistics.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "model/load_model.h"
#include "test_util.h"

namespace rwkv_embed::analysis {
namespace {

struct Rows {
  int64_t n, c;
  std::vector<float> v;
  Rows(int64_t rows, int64_t cols) : n(rows), c(cols), v(rows * cols, 0.0f) {}
  float& at(int64_t r, int64_t j) { return v[r * c + j]; }
  RowSet set() const { return {v.data(), n, c, 0}; }
};

Rows Gaussian(int64_t n, int64_t c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  Rows x(n, c);
  for (float& f : x.v) f = static_cast<float>(g(rng));
  return x;
}

// Rank-k orthogonal equal-norm rows whose mean is zero: +-3 e_i, i < k.
Rows PlusMinusBasis(int64_t k, int64_t c) {
  Rows x(2 * k, c);
  for (int64_t i = 0; i < k; ++i) {
    x.at(2 * i, i) = 3.0f;
    x.at(2 * i + 1, i) = -3.0f;
  }
  return x;
}

TEST(LinalgTest, SymmetricEigenvaluesOfAKnownMatrix) {
  // [[2,1,0],[1,2,0],[0,0,5]]: eigenvalues 5, 3, 1.
  const std::vector<double> a = {2, 1, 0, 1, 2, 0, 0, 0, 5};
  const std::vector<double> w = SymmetricEigenvalues(a, 3);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_NEAR(w[0], 5.0, 1e-12);
  EXPECT_NEAR(w[1], 3.0, 1e-12);
  EXPECT_NEAR(w[2], 1.0, 1e-12);
}

TEST(LinalgTest, SingularValuesOfAWideAndATallMatrixAgree) {
  // x = diag(4, 2) padded with zero columns; its transpose has the same singular values.
  const std::vector<double> wide = {4, 0, 0, 0, 2, 0};  // [2, 3]
  const std::vector<double> tall = {4, 0, 0, 2, 0, 0};  // [3, 2]
  for (const auto& [x, n, c] : {std::tuple{wide, 2, 3}, std::tuple{tall, 3, 2}}) {
    const std::vector<double> s = SingularValues(x.data(), n, c);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_NEAR(s[0], 4.0, 1e-12);
    EXPECT_NEAR(s[1], 2.0, 1e-12);
  }
}

TEST(MatrixEntropyTest, IsotropicGaussianIsNearlyMaximal) {
  const Rows x = Gaussian(4000, 16, 1);
  const double s = MatrixEntropy(x.set());
  EXPECT_GT(s, 0.98);
  EXPECT_LE(s, 1.0 + 1e-12);
}

TEST(MatrixEntropyTest, OrthogonalEqualNormRowsGiveLogKOverLogMinNC) {
  for (int64_t k : {2, 3, 5}) {
    const Rows x = PlusMinusBasis(k, 16);  // 2k rows, rank k, equal eigenvalues
    const double expected = std::log(static_cast<double>(k)) /
                            std::log(static_cast<double>(std::min<int64_t>(2 * k, 16)));
    EXPECT_NEAR(MatrixEntropy(x.set()), expected, 1e-12) << "k = " << k;
    // Renyi entropies of a uniform spectrum all equal log k.
    EXPECT_NEAR(MatrixEntropy(x.set(), 2.0), expected, 1e-12) << "k = " << k;
    EXPECT_NEAR(MatrixEntropy(x.set(), 0.5), expected, 1e-12) << "k = " << k;
  }
}

TEST(MatrixEntropyTest, MoreRowsThanColumnsUsesTheSmallerGramWithTheSameAnswer) {
  // 12 rows of width 3: the entropy is normalised by log 3, and the spectrum from the 3 x 3
  // Gram must equal the one a direct 12 x 12 Gram gives.
  const Rows x = Gaussian(12, 3, 7);
  int64_t kept = 0;
  const std::vector<double> z = CentredUnitRows(x.set(), &kept);
  ASSERT_EQ(kept, 12);
  std::vector<double> k(kept * kept);
  for (int64_t i = 0; i < kept; ++i) {
    for (int64_t j = 0; j < kept; ++j) {
      double d = 0;
      for (int64_t c = 0; c < 3; ++c) d += z[i * 3 + c] * z[j * 3 + c];
      k[i * kept + j] = d;
    }
  }
  double h = 0;
  for (double l : SymmetricEigenvalues(k, kept)) {
    const double p = l / kept;
    if (p > 1e-15) h -= p * std::log(p);
  }
  EXPECT_NEAR(MatrixEntropy(x.set()), h / std::log(3.0), 1e-10);
}

TEST(MatrixEntropyTest, IdenticalRowsCentreToZeroAndHaveNoEntropy) {
  Rows x(5, 4);
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t j = 0; j < 4; ++j) x.at(r, j) = 0.25f * static_cast<float>(j + 1);
  }
  int64_t kept = -1;
  CentredUnitRows(x.set(), &kept);
  EXPECT_EQ(kept, 0);  // every centred row is exactly zero, and dropped
  EXPECT_EQ(MatrixEntropy(x.set()), 0.0);
  EXPECT_EQ(MatrixEntropy(x.set(), 2.0), 0.0);
}

TEST(MatrixEntropyTest, RenyiTwoMatchesTheFrobeniusClosedForm) {
  // S_2 = -log(sum lambda^2) = -log(|K|_F^2 / (tr K)^2): no eigenvalues needed.
  const Rows x = Gaussian(9, 20, 3);
  int64_t kept = 0;
  const std::vector<double> z = CentredUnitRows(x.set(), &kept);
  double frob = 0.0;
  for (int64_t i = 0; i < kept; ++i) {
    for (int64_t j = 0; j < kept; ++j) {
      double d = 0;
      for (int64_t c = 0; c < 20; ++c) d += z[i * 20 + c] * z[j * 20 + c];
      frob += d * d;
    }
  }
  const double closed = -std::log(frob / (kept * kept)) / std::log(static_cast<double>(kept));
  EXPECT_NEAR(MatrixEntropy(x.set(), 2.0), closed, 1e-12);
  // alpha -> 1 approaches the Shannon value from both sides.
  const double shannon = MatrixEntropy(x.set(), 1.0);
  EXPECT_NEAR(MatrixEntropy(x.set(), 1.0 + 1e-7), shannon, 1e-6);
  EXPECT_NEAR(MatrixEntropy(x.set(), 1.0 - 1e-7), shannon, 1e-6);
  EXPECT_GE(MatrixEntropy(x.set(), 0.5), shannon);  // Renyi entropy falls with alpha
  EXPECT_LE(MatrixEntropy(x.set(), 2.0), shannon);
}

TEST(MatrixEntropyTest, RejectsABadAlpha) {
  const Rows x = Gaussian(4, 4, 1);
  EXPECT_THROW(MatrixEntropy(x.set(), 0.0), UsageError);
  EXPECT_THROW(MatrixEntropy(x.set(), std::nan("")), UsageError);
  EXPECT_THROW(MatrixEntropy(Rows(1, 4).set(), -1.0), UsageError);  // even on a degenerate set
}

TEST(CurvatureTest, StraightLineHasZeroCurvature) {
  Rows x(6, 5);
  const float lengths[] = {0.0f, 1.0f, 3.0f, 3.5f, 7.0f, 8.0f};  // uneven steps, one direction
  for (int64_t t = 0; t < 6; ++t) {
    for (int64_t j = 0; j < 5; ++j) x.at(t, j) = lengths[t] * static_cast<float>(j - 2) + 1.0f;
  }
  const AngleSum a = TrajectoryAngles(x.set());
  EXPECT_EQ(a.count, 4);
  EXPECT_NEAR(a.sum / a.count, 0.0, 1e-3);  // float inputs: acos near 1 is ill-conditioned
}

TEST(CurvatureTest, PlanarCircleTurnsByItsStepAngle) {
  // Points at angles t * d on a circle in a plane of R^8: successive chords turn by exactly d.
  const double d = 0.3;
  Rows x(10, 8);
  for (int64_t t = 0; t < 10; ++t) {
    x.at(t, 2) = static_cast<float>(std::cos(d * t));
    x.at(t, 5) = static_cast<float>(std::sin(d * t));
  }
  const AngleSum a = TrajectoryAngles(x.set());
  EXPECT_EQ(a.count, 8);
  EXPECT_NEAR(a.sum / a.count, d, 1e-5);
}

TEST(CurvatureTest, BackAndForthIsPiAndZeroStepsAreSkipped) {
  Rows x(5, 2);
  const float pos[] = {0, 1, 1, 0, 1};  // steps +1, 0, -1, +1: only (-1, +1) has two non-zero
  for (int64_t t = 0; t < 5; ++t) x.at(t, 0) = pos[t];
  const AngleSum a = TrajectoryAngles(x.set());
  EXPECT_EQ(a.count, 1);
  EXPECT_DOUBLE_EQ(a.sum, std::numbers::pi);
  EXPECT_EQ(TrajectoryAngles(Rows(2, 3).set()).count, 0);  // < 3 points: no angle
}

TEST(AnisotropyTest, ClosedFormEqualsThePairwiseMean) {
  Rows x = Gaussian(7, 5, 11);
  for (int64_t r = 0; r < 7; ++r) x.at(r, 0) += 2.0f;  // a common direction
  for (int64_t j = 0; j < 5; ++j) x.at(3, j) = 0.0f;   // a zero row: no cosine, left out
  for (bool centred : {false, true}) {
    std::vector<double> mean(5, 0.0);
    if (centred) {
      for (int64_t r = 0; r < 7; ++r) {
        for (int64_t j = 0; j < 5; ++j) mean[j] += x.at(r, j) / 7.0;
      }
    }
    double sum = 0;
    int pairs = 0;
    for (int64_t a = 0; a < 7; ++a) {
      for (int64_t b = a + 1; b < 7; ++b) {
        double ab = 0, aa = 0, bb = 0;
        for (int64_t j = 0; j < 5; ++j) {
          const double u = x.at(a, j) - mean[j], v = x.at(b, j) - mean[j];
          ab += u * v;
          aa += u * u;
          bb += v * v;
        }
        if (aa == 0 || bb == 0) continue;
        sum += ab / std::sqrt(aa * bb);
        ++pairs;
      }
    }
    ASSERT_EQ(pairs, centred ? 21 : 15);
    const std::optional<double> a = Anisotropy(x.set(), centred);
    ASSERT_TRUE(a.has_value());
    EXPECT_NEAR(*a, sum / pairs, 1e-12) << "centred " << centred;
  }
}

TEST(AnisotropyTest, IsotropicNearZeroIdenticalOneDegenerateNone) {
  const Rows g = Gaussian(3000, 16, 5);
  EXPECT_LT(std::abs(*Anisotropy(g.set(), false)), 0.01);
  EXPECT_LT(std::abs(*Anisotropy(g.set(), true)), 0.01);
  Rows same(4, 3);
  for (int64_t r = 0; r < 4; ++r) same.at(r, 1) = 2.0f;
  EXPECT_NEAR(*Anisotropy(same.set(), false), 1.0, 1e-15);
  EXPECT_FALSE(Anisotropy(same.set(), true).has_value());  // all rows centre to zero
  // Centring turns a shared offset into isotropy: +-e_i around a large common vector.
  Rows shifted = PlusMinusBasis(4, 8);
  for (int64_t r = 0; r < shifted.n; ++r) shifted.at(r, 7) = 50.0f;
  EXPECT_GT(*Anisotropy(shifted.set(), false), 0.99);
  EXPECT_NEAR(*Anisotropy(shifted.set(), true), -1.0 / 7.0, 1e-12);  // 8 rows summing to zero
}

TEST(EffectiveRankTest, EqualSingularValuesGiveTheRank) {
  const std::vector<double> s = {2, 2, 2, 0, 0};
  EXPECT_NEAR(EffectiveRank(s), 3.0, 1e-12);
  EXPECT_NEAR(EffectiveRank(std::vector<double>{7}), 1.0, 1e-15);
  EXPECT_EQ(EffectiveRank(std::vector<double>{0, 0}), 0.0);
  // Through the SVD: +-3 e_i, i < 4, centred (already zero-mean) has four equal singular values.
  EXPECT_NEAR(EffectiveRank(RowSingularValues(PlusMinusBasis(4, 10).set(), true)), 4.0, 1e-10);
  const Rows g = Gaussian(4000, 12, 9);
  EXPECT_GT(EffectiveRank(RowSingularValues(g.set(), true)), 0.98 * 12);
}

TEST(DecayFitTest, PowerLawSpectrumGivesItsExponent) {
  std::vector<double> s;
  for (int i = 1; i <= 50; ++i) s.push_back(3.0 * std::pow(i, -0.7));
  const DecayFit f = FitPowerLawDecay(s);
  EXPECT_EQ(f.points, 50);
  EXPECT_NEAR(f.exponent, 0.7, 1e-12);
  EXPECT_NEAR(f.r2, 1.0, 1e-12);
  // Through a matrix: W = diag(sigma) H with H a Householder reflection (rows mixed, same
  // singular values); sigma_i = i^-1.3.
  const int64_t n = 24;
  std::vector<double> v(n);
  for (int64_t j = 0; j < n; ++j) v[j] = std::sin(1.0 + j);
  double vv = 0;
  for (double e : v) vv += e * e;
  Rows w(n, n);
  for (int64_t i = 0; i < n; ++i) {
    const double sigma = std::pow(static_cast<double>(i + 1), -1.3);
    for (int64_t j = 0; j < n; ++j) {
      w.at(i, j) = static_cast<float>(sigma * ((i == j ? 1.0 : 0.0) - 2.0 * v[i] * v[j] / vv));
    }
  }
  const DecayFit g = FitPowerLawDecay(RowSingularValues(w.set(), false));
  EXPECT_EQ(g.points, n);
  EXPECT_NEAR(g.exponent, 1.3, 1e-4);  // float rounding of W
  EXPECT_EQ(FitPowerLawDecay(std::vector<double>{1.0, 0.0}).points, 1);
}

}  // namespace
}  // namespace rwkv_embed::analysis

namespace rwkv_embed::analysis {
namespace {

// Texts delivered in pieces, layers interleaved and texts interleaved (as a batched forward pass
// with carried states delivers them), with a queue small enough to flush several times: the
// per-layer means equal those of the whole texts analysed directly.
TEST(TokenStatisticsTest, PiecewiseDeliveryEqualsWholeTexts) {
  const int64_t C = 6;
  const std::vector<int64_t> lengths = {5, 1, 9, 0, 3, 2, 12};
  const std::vector<int> layers = {4, 0};
  std::vector<Rows> texts;
  for (size_t i = 0; i < lengths.size(); ++i) texts.push_back(Gaussian(lengths[i], C, 100 + i));
  TokenStatisticsOptions o;
  o.alpha = 1.5;
  o.queue_floats = 40;
  o.max_text_tokens = 10;  // text 6 (12 tokens) is left out
  TokenStatistics stats(layers, lengths, C, o);
  EXPECT_EQ(stats.texts_over_cap(), 1);
  // Pieces of at most 4 tokens; all texts advance together, layer 4 before layer 0 each round.
  for (int64_t first = 0; first < 12; first += 4) {
    for (size_t i = 0; i < lengths.size(); ++i) {
      const int64_t T = std::min<int64_t>(4, lengths[i] - first);
      if (T <= 0) continue;
      for (int layer : layers) {
        // Layer 0 is the text's rows scaled by 2 (entropy and angles are scale-free; rows differ).
        std::vector<float> piece(texts[i].v.begin() + first * C,
                                 texts[i].v.begin() + (first + T) * C);
        if (layer == 0) {
          for (float& f : piece) f *= 2.0f;
        }
        stats.Add(static_cast<int64_t>(i), layer, first, piece.data(), T);
      }
    }
  }
  stats.Finish();
  double entropy = 0, curvature = 0;
  int64_t e_texts = 0, c_texts = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] > 10) continue;
    if (lengths[i] >= 2) {
      entropy += MatrixEntropy(texts[i].set(), 1.5);
      ++e_texts;
    }
    const AngleSum a = TrajectoryAngles(texts[i].set());
    if (a.count > 0) {
      curvature += a.sum / a.count;
      ++c_texts;
    }
  }
  ASSERT_EQ(e_texts, 4);  // lengths 5, 9, 3, 2
  ASSERT_EQ(c_texts, 3);  // lengths 5, 9, 3
  for (const TokenLayerStatistics& r : stats.results()) {
    EXPECT_EQ(r.prompt_entropy_texts, e_texts);
    EXPECT_EQ(r.curvature_texts, c_texts);
    EXPECT_NEAR(r.prompt_entropy, entropy / e_texts, 1e-9);
    EXPECT_NEAR(r.curvature, curvature / c_texts, 1e-6);
  }
}

TEST(TokenStatisticsTest, RejectsPiecesOutOfOrderUnknownLayersAndIncompleteTexts) {
  const std::vector<float> rows(4 * 3, 1.0f);
  TokenStatistics stats({1}, {4}, 3);
  EXPECT_THROW(stats.Add(0, 2, 0, rows.data(), 2), UsageError);  // layer not requested
  EXPECT_THROW(stats.Add(1, 1, 0, rows.data(), 2), UsageError);  // no text 1
  EXPECT_THROW(stats.Add(0, 1, 2, rows.data(), 2), UsageError);  // starts at 2, nothing before
  stats.Add(0, 1, 0, rows.data(), 2);
  EXPECT_THROW(stats.Finish(), UsageError);  // tokens 2..3 never came
}

}  // namespace
}  // namespace rwkv_embed::analysis

namespace rwkv_embed {
namespace {

// BlockProjections' matrices as dense rows equal what the GEMM multiplies by: x = I gives
// y = I W^T, so y[j][r] = W[r][j], through the GEMM's own BF16 widening. Both architectures, BF16.
TEST(WeightRowsTest, DenseRowsOfEveryProjectionMatchTheGemm) {
  for (const char* name : {"models/tiny-rwkv6-bf16", "models/tiny-rwkv7-bf16"}) {
    const std::filesystem::path dir = testing::SharedFile(name);
    if (dir.empty()) GTEST_SKIP() << "shared models absent";
    const std::unique_ptr<SequenceModel> model = LoadModel(dir);
    ASSERT_EQ(model->weight_dtype(), DType::kBF16);
    EXPECT_THROW(model->BlockProjections(model->num_blocks()), UsageError);
    const std::vector<NamedWeight> block = model->BlockProjections(model->num_blocks() - 1);
    ASSERT_EQ(block.size(), model->Architecture() == "rwkv6" ? 8u : 6u) << name;
    for (const NamedWeight& w : block) {
      const Matrix dense = DenseWeightRows(w.weight);
      ASSERT_EQ(dense.rows(), w.weight.rows);
      ASSERT_EQ(dense.cols(), w.weight.cols);
      Matrix eye(w.weight.cols, w.weight.cols), y(w.weight.cols, w.weight.rows);
      for (int64_t j = 0; j < w.weight.cols; ++j) eye.Row(j)[j] = 1.0f;
      kernels::MatMulT(eye.data(), w.weight.cols, w.weight, y.data());
      for (int64_t r = 0; r < dense.rows(); ++r) {
        for (int64_t j = 0; j < dense.cols(); ++j) {
          ASSERT_EQ(dense.Row(r)[j], y.Row(j)[r]) << name << " " << w.name << " " << r << "," << j;
        }
      }
    }
  }
}

}  // namespace
}  // namespace rwkv_embed
