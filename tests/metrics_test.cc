// Reference values come from SciPy 1.10.1 / scikit-learn 1.2.1 / NumPy 1.24.2 (Debian 12), printed
// by tests/metrics_reference.py; the Python that produced each one is quoted beside it.
#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "metrics/resampling.h"

namespace rwkv_embed::metrics {
namespace {

constexpr double kTol = 1e-12;

// Case A: binary labels (all ties) and tied scores.
const std::vector<double> kScoresA = {0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.6, 0.5, 0.4, 0.3, 0.3, 0.1};
const std::vector<double> kLabelsA = {1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0};
// A second system's scores on the same pairs (for the paired tests).
const std::vector<double> kScoresB = {0.7, 0.9, 0.2, 0.6, 0.65, 0.3,
                                      0.5, 0.8, 0.1, 0.4, 0.45, 0.35};
// Case B: continuous values with ties on both sides.
const std::vector<double> kX = {1, 2, 2, 3, 4, 4, 4, 5};
const std::vector<double> kY = {2.5, 1.0, 3.0, 3.0, 4.5, 2.0, 5.0, 5.0};

double SpearmanMetric(std::span<const double> s, std::span<const double> l) {
  return Spearman(s, l);
}

TEST(PortableRngTest, EngineAndBoundedDrawsArePinned) {
  // [rand.predef]: the 10000th output of a default-seeded mt19937_64.
  PortableRng standard(5489);
  for (int i = 0; i < 9999; ++i) standard.Next();
  EXPECT_EQ(standard.Next(), 9981545732273789042ull);
  // r = PortableRng(42); [r.below(10) for _ in range(8)]  ->  [7, 6, 7, 1, 9, 0, 5, 3]
  PortableRng rng(42);
  std::vector<uint64_t> draws;
  for (int i = 0; i < 8; ++i) draws.push_back(rng.Below(10));
  EXPECT_EQ(draws, (std::vector<uint64_t>{7, 6, 7, 1, 9, 0, 5, 3}));
  EXPECT_EQ(rng.Below(1), 0u);
  // Below(n) for n > 2^63 exercises the rejection branch and the full 128-bit product.
  const uint64_t big = (uint64_t{1} << 63) + 12345;
  for (int i = 0; i < 100; ++i) EXPECT_LT(rng.Below(big), big);
}

TEST(PortableRngTest, SampleWithoutReplacementIsAPrefixOfAPermutation) {
  PortableRng rng(9);
  auto s = rng.SampleWithoutReplacement(50, 50);
  std::sort(s.begin(), s.end());
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], i);
  // PortableRng(42).sample(10, 4) -> [7, 6, 8, 3]
  EXPECT_EQ(PortableRng(42).SampleWithoutReplacement(10, 4), (std::vector<size_t>{7, 6, 8, 3}));
}

TEST(CosineTest, DoubleAccumulationAndUndefinedForZeroVectors) {
  const std::vector<float> a = {1, 2, 3}, b = {4, 5, 6};
  // 32 / sqrt(14 * 77)
  EXPECT_NEAR(CosineSimilarity(a, b), 32.0 / std::sqrt(14.0 * 77.0), kTol);
  const std::vector<float> neg = {-2, -4, -6};
  EXPECT_EQ(CosineSimilarity(a, neg), -1.0);
  EXPECT_EQ(CosineSimilarity(a, a), 1.0);  // clamped, never 1 + ulp
  const std::vector<float> zero = {0, 0, 0};
  EXPECT_TRUE(std::isnan(CosineSimilarity(a, zero)));
  EXPECT_TRUE(std::isnan(CosineSimilarity(zero, zero)));
  const std::vector<float> with_nan = {1, NAN, 3};
  EXPECT_TRUE(std::isnan(CosineSimilarity(a, with_nan)));
  // Float inputs whose float-accumulated dot product would lose the small component.
  const std::vector<float> u = {1e4f, 1.0f}, v = {1e4f, -1.0f};
  EXPECT_NEAR(CosineSimilarity(u, v), (1e8 - 1) / (1e8 + 1), kTol);
  EXPECT_THROW(CosineSimilarity(a, std::vector<float>{1, 2}), UsageError);
}

TEST(RankTest, AverageRanksForTies) {
  // scipy.stats.rankdata(s)
  EXPECT_EQ(AverageRanks(kScoresA),
            (std::vector<double>{12.0, 10.5, 10.5, 9.0, 7.0, 7.0, 7.0, 5.0, 4.0, 2.5, 2.5, 1.0}));
}

TEST(CorrelationTest, MatchesScipyWithTies) {
  // stats.spearmanr(s, l).correlation
  EXPECT_NEAR(Spearman(kScoresA, kLabelsA), 0.49487165930539356, kTol);
  // stats.pearsonr(s, l)[0]
  EXPECT_NEAR(Pearson(kScoresA, kLabelsA), 0.4795122238161564, kTol);
  // stats.spearmanr(x, y).correlation; stats.pearsonr(x, y)[0]
  EXPECT_NEAR(Spearman(kX, kY), 0.639862645418174, kTol);
  EXPECT_NEAR(Pearson(kX, kY), 0.665614055739068, kTol);
  std::vector<double> neg_y;
  for (double v : kY) neg_y.push_back(-v);
  EXPECT_NEAR(Spearman(kX, neg_y), -0.639862645418174, kTol);
  // Invariant to monotone transforms of either side (ranks only).
  std::vector<double> cubed;
  for (double v : kX) cubed.push_back(v * v * v);
  EXPECT_NEAR(Spearman(cubed, kY), 0.639862645418174, kTol);
}

TEST(CorrelationTest, UndefinedCasesAreNaN) {
  // stats.spearmanr([0.5]*4, [0, 1, 0, 1]) -> nan; stats.spearmanr([.1, .2, .3], [1, 1, 1]) -> nan
  EXPECT_TRUE(std::isnan(
      Spearman(std::vector<double>{0.5, 0.5, 0.5, 0.5}, std::vector<double>{0, 1, 0, 1})));
  EXPECT_TRUE(
      std::isnan(Spearman(std::vector<double>{0.1, 0.2, 0.3}, std::vector<double>{1, 1, 1})));
  EXPECT_TRUE(
      std::isnan(Pearson(std::vector<double>{2, 2, 2}, std::vector<double>{0.1, 0.2, 0.3})));
}

TEST(CorrelationTest, RejectsBadInput) {
  EXPECT_THROW(Spearman(std::vector<double>{1, 2}, std::vector<double>{1, 2, 3}), UsageError);
  EXPECT_THROW(Pearson(std::vector<double>{1}, std::vector<double>{1}), UsageError);
  EXPECT_THROW(Spearman(std::vector<double>{1, NAN, 3}, std::vector<double>{1, 2, 3}),
               NumericError);
  EXPECT_THROW(Pearson(std::vector<double>{1, 2, 3}, std::vector<double>{1, INFINITY, 3}),
               NumericError);
}

TEST(RankingMetricsTest, MatchSklearn) {
  // skm.roc_auc_score(l, s); skm.average_precision_score(l, s)
  EXPECT_NEAR(RocAuc(kScoresA, kLabelsA), 0.7857142857142858, kTol);
  EXPECT_NEAR(AveragePrecision(kScoresA, kLabelsA), 0.7087301587301588, kTol);
  // skm.average_precision_score([1, 1, 1], [0.1, 0.2, 0.2]) -> 1.0
  EXPECT_NEAR(AveragePrecision(std::vector<double>{0.1, 0.2, 0.2}, std::vector<double>{1, 1, 1}),
              1.0, kTol);
  // Perfect and reversed rankings; all scores tied -> 1/2.
  const std::vector<double> l = {0, 0, 1, 1};
  EXPECT_EQ(RocAuc(std::vector<double>{1, 2, 3, 4}, l), 1.0);
  EXPECT_EQ(RocAuc(std::vector<double>{4, 3, 2, 1}, l), 0.0);
  EXPECT_EQ(RocAuc(std::vector<double>{5, 5, 5, 5}, l), 0.5);
}

TEST(RankingMetricsTest, UndefinedAndInvalid) {
  // sklearn raises for a single class; here it is NaN.
  EXPECT_TRUE(std::isnan(RocAuc(std::vector<double>{0.1, 0.2}, std::vector<double>{1, 1})));
  EXPECT_TRUE(
      std::isnan(AveragePrecision(std::vector<double>{0.1, 0.2}, std::vector<double>{0, 0})));
  EXPECT_THROW(RocAuc(std::vector<double>{0.1, 0.2}, std::vector<double>{0, 2}), DataError);
  EXPECT_THROW(AveragePrecision(std::vector<double>{0.1, 0.2}, std::vector<double>{0, 0.5}),
               DataError);
  EXPECT_THROW(RocAuc(std::vector<double>{NAN, 0.2}, std::vector<double>{0, 1}), NumericError);
}

TEST(ThresholdTest, ClassificationAtMatchesSklearn) {
  // pred = [int(v >= 0.65) for v in s]; skm.accuracy_score / precision_score / recall_score /
  // f1_score (l, pred) -> (0.75, 0.75, 0.6, 0.6666666666666665)
  const Classification c = ClassificationAt(kScoresA, kLabelsA, 0.65);
  EXPECT_NEAR(c.accuracy, 0.75, kTol);
  EXPECT_NEAR(c.precision, 0.75, kTol);
  EXPECT_NEAR(c.recall, 0.6, kTol);
  EXPECT_NEAR(c.f1, 0.6666666666666665, kTol);
  EXPECT_EQ(c.tp, 3);
  EXPECT_EQ(c.fp, 1);
  EXPECT_EQ(c.tn, 6);
  EXPECT_EQ(c.fn, 2);
  // Nothing predicted positive: precision and F1 are 0 (sklearn's zero_division), accuracy = 7/12.
  const Classification none = ClassificationAt(kScoresA, kLabelsA, 2.0);
  EXPECT_EQ(none.precision, 0.0);
  EXPECT_EQ(none.f1, 0.0);
  EXPECT_NEAR(none.accuracy, 7.0 / 12.0, kTol);
}

TEST(ThresholdTest, FitOnOneSplitApplyToAnother) {
  // Sweep by hand over case A (5 positives of 12), cutting below each distinct score:
  //   after 0.7: TP 3, FP 1 -> accuracy 9/12 (best), F1 6/9
  //   after 0.4: TP 5, FP 4 -> accuracy 8/12,        F1 10/14 (best)
  const ThresholdFit acc = FitThreshold(kScoresA, kLabelsA, ThresholdObjective::kAccuracy);
  EXPECT_NEAR(acc.threshold, 0.65, 1e-15);  // midpoint of 0.7 and 0.6
  EXPECT_NEAR(acc.objective, 0.75, kTol);
  const ThresholdFit f1 = FitThreshold(kScoresA, kLabelsA, ThresholdObjective::kF1);
  EXPECT_NEAR(f1.threshold, 0.35, 1e-15);  // midpoint of 0.4 and 0.3
  EXPECT_NEAR(f1.objective, 10.0 / 14.0, kTol);
  // Another split: scores between the fitted split's 0.6 and 0.7 fall on the right sides.
  const std::vector<double> s2 = {0.66, 0.64, 0.9, 0.2}, l2 = {1, 0, 1, 0};
  const Classification c = ClassificationAt(s2, l2, acc.threshold);
  EXPECT_EQ(c.accuracy, 1.0);
  EXPECT_EQ(c.f1, 1.0);
  const Classification c_f1 = ClassificationAt(s2, l2, f1.threshold);
  EXPECT_EQ(c_f1.fp, 1);  // 0.64 >= 0.35
  EXPECT_NEAR(c_f1.accuracy, 0.75, kTol);
}

TEST(ThresholdTest, ExtremesAndTieBreaking) {
  // All positive: predicting everything positive is optimal, at threshold = min score.
  const std::vector<double> s = {0.3, 0.1, 0.2}, ones = {1, 1, 1}, zeros = {0, 0, 0};
  const ThresholdFit all_pos = FitThreshold(s, ones, ThresholdObjective::kAccuracy);
  EXPECT_EQ(all_pos.threshold, 0.1);
  EXPECT_EQ(all_pos.objective, 1.0);
  // All negative: "nothing positive" wins, just above the max score.
  const ThresholdFit all_neg = FitThreshold(s, zeros, ThresholdObjective::kAccuracy);
  EXPECT_GT(all_neg.threshold, 0.3);
  EXPECT_EQ(ClassificationAt(s, zeros, all_neg.threshold).fp, 0);
  EXPECT_EQ(all_neg.objective, 1.0);
  // Equal accuracy at several cuts: the highest threshold is kept. Scores 4,3,2,1 labels 1,0,1,0:
  // cuts give accuracies 2/4, 3/4 (t=3.5), 2/4, 3/4 (t=1.5), 2/4.
  const ThresholdFit tie =
      FitThreshold(std::vector<double>{4, 3, 2, 1}, std::vector<double>{1, 0, 1, 0},
                   ThresholdObjective::kAccuracy);
  EXPECT_EQ(tie.threshold, 3.5);
  EXPECT_THROW(FitThreshold(s, std::vector<double>{1, 0, 3}, ThresholdObjective::kF1), DataError);
}

TEST(SummaryTest, MatchesNumpy) {
  const std::vector<double> v = {0.31, 0.29, 0.35, 0.30, 0.28};
  // np.mean(v), np.std(v, ddof=1) -> (0.306, 0.02701851217221258)
  const Summary s = Summarize(v);
  EXPECT_EQ(s.n, 5);
  EXPECT_NEAR(s.mean, 0.306, kTol);
  EXPECT_NEAR(s.sd, 0.02701851217221258, kTol);
  EXPECT_EQ(s.min, 0.28);
  EXPECT_EQ(s.max, 0.35);
  EXPECT_TRUE(std::isnan(Summarize(std::vector<double>{0.5}).sd));
  EXPECT_THROW(Summarize(std::vector<double>{}), UsageError);
  EXPECT_THROW(Summarize(std::vector<double>{0.1, NAN}), NumericError);
  // np.percentile(v, 2.5), (v, 97.5), (v, 50) -> (0.281, 0.346, 0.3)
  EXPECT_NEAR(Percentile(v, 2.5), 0.281, kTol);
  EXPECT_NEAR(Percentile(v, 97.5), 0.346, kTol);
  EXPECT_NEAR(Percentile(v, 50), 0.3, kTol);
  EXPECT_EQ(Percentile(v, 0), 0.28);
  EXPECT_EQ(Percentile(v, 100), 0.35);
  EXPECT_THROW(Percentile(v, 101), UsageError);
}

// The resampling references re-implement PortableRng in Python (tests/metrics_reference.py) and
// use scipy/sklearn for the metric and numpy.percentile for the interval.
TEST(BootstrapTest, SpearmanCiMatchesPythonReference) {
  // bootstrap_ci(s, l, spearman, 200, 7) -> (-0.07337135555756791, 0.8588680411091905, 0)
  const ConfidenceInterval ci =
      BootstrapCi(kScoresA, kLabelsA, SpearmanMetric, {.resamples = 200, .seed = 7});
  EXPECT_NEAR(ci.estimate, 0.49487165930539356, kTol);
  EXPECT_NEAR(ci.lo, -0.07337135555756791, kTol);
  EXPECT_NEAR(ci.hi, 0.8588680411091905, kTol);
  EXPECT_EQ(ci.undefined, 0);
  EXPECT_EQ(ci.resamples, 200);
  EXPECT_EQ(ci.level, 0.95);
  // Same seed, same interval; another seed, another interval.
  const ConfidenceInterval again =
      BootstrapCi(kScoresA, kLabelsA, SpearmanMetric, {.resamples = 200, .seed = 7});
  EXPECT_EQ(again.lo, ci.lo);
  EXPECT_EQ(again.hi, ci.hi);
  const ConfidenceInterval other =
      BootstrapCi(kScoresA, kLabelsA, SpearmanMetric, {.resamples = 200, .seed = 8});
  EXPECT_TRUE(other.lo != ci.lo || other.hi != ci.hi);
}

TEST(BootstrapTest, UndefinedResamplesAreCountedAndExcluded) {
  // bootstrap_ci(s, l, auc-or-nan, 300, 3) -> (0.4778571428571429, 1.0, 1): one resample drew a
  // single class.
  const ConfidenceInterval ci =
      BootstrapCi(kScoresA, kLabelsA,
                  [](std::span<const double> s, std::span<const double> l) { return RocAuc(s, l); },
                  {.resamples = 300, .seed = 3});
  EXPECT_NEAR(ci.lo, 0.4778571428571429, kTol);
  EXPECT_NEAR(ci.hi, 1.0, kTol);
  EXPECT_EQ(ci.undefined, 1);
  // An undefined estimate gives an undefined interval, not zeros.
  const std::vector<double> constant(12, 0.5);
  const ConfidenceInterval none = BootstrapCi(constant, kLabelsA, SpearmanMetric);
  EXPECT_TRUE(std::isnan(none.estimate));
  EXPECT_TRUE(std::isnan(none.lo));
  EXPECT_TRUE(std::isnan(none.hi));
}

TEST(BootstrapTest, MeanIntervalAgreesWithNormalTheory) {
  // For the mean of n = 400 fixed values the percentile interval approaches
  // mean ± 1.96 sd / sqrt(n). The Monte Carlo error of a bootstrap 2.5% quantile from B draws is
  // SE = sqrt(q (1 - q) / B) / phi(z_q) * sd_mean = 0.0304 * half_width for B = 2000
  // (phi(1.96) = 0.0584); the check allows 4 SE.
  std::vector<double> x(400), unused(400, 0);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * static_cast<double>(i) + 1.0);
  const Summary s = Summarize(x);
  const double half_width = 1.959963984540054 * s.sd / std::sqrt(400.0);
  const ConfidenceInterval ci = BootstrapCi(
      x, unused,
      [](std::span<const double> v, std::span<const double>) { return Summarize(v).mean; },
      {.resamples = 2000, .seed = 1});
  const double four_se = 4 * 0.0304 * half_width;
  EXPECT_NEAR(ci.lo, s.mean - half_width, four_se);
  EXPECT_NEAR(ci.hi, s.mean + half_width, four_se);
}

TEST(PairedTest, BootstrapMatchesPythonReference) {
  // paired_bootstrap(s, sb, l, spearman, 200, 11)
  //   -> (0.42142368183422424, -0.0510800537389801, 0.9425026611939025, 0.11, 0)
  const PairedTest t =
      PairedBootstrap(kScoresA, kScoresB, kLabelsA, SpearmanMetric, {.resamples = 200, .seed = 11});
  EXPECT_NEAR(t.difference, 0.42142368183422424, kTol);
  EXPECT_NEAR(t.estimate_a - t.estimate_b, t.difference, kTol);
  EXPECT_NEAR(t.lo, -0.0510800537389801, kTol);
  EXPECT_NEAR(t.hi, 0.9425026611939025, kTol);
  EXPECT_NEAR(t.p_value, 0.11, kTol);  // 22 of 200
  EXPECT_EQ(t.undefined, 0);
}

TEST(PairedTest, PermutationMatchesPythonReference) {
  // paired_permutation(s, sb, l, spearman, 500, 5) -> (0.42142368183422424, 0.17165668662674652, 0)
  const PairedTest t = PairedPermutation(kScoresA, kScoresB, kLabelsA, SpearmanMetric,
                                         {.resamples = 500, .seed = 5});
  EXPECT_NEAR(t.difference, 0.42142368183422424, kTol);
  EXPECT_NEAR(t.p_value, 0.17165668662674652, kTol);  // (1 + 85) / (1 + 500)
  EXPECT_TRUE(std::isnan(t.lo));
  EXPECT_EQ(t.undefined, 0);
}

TEST(PairedTest, IdenticalSystemsAreNotSignificant) {
  const PairedTest boot = PairedBootstrap(kScoresA, kScoresA, kLabelsA, SpearmanMetric);
  EXPECT_EQ(boot.difference, 0.0);
  EXPECT_EQ(boot.p_value, 1.0);
  EXPECT_EQ(boot.lo, 0.0);
  EXPECT_EQ(boot.hi, 0.0);
  const PairedTest perm = PairedPermutation(kScoresA, kScoresA, kLabelsA, SpearmanMetric);
  EXPECT_EQ(perm.p_value, 1.0);
}

TEST(PairedTest, ExactSignFlipPValueForAMeanDifference) {
  // metric = mean score (labels unused); the swap test is then the sign-flip test on
  // d_i = a_i - b_i. With d = (1, 1, 1, 1, 1, 1) only the two all-same flips reach |mean| = 1, so
  // the exact p is 2/64 = 1/32; with 20000 random flips p is close to that.
  const std::vector<double> a = {2, 3, 4, 5, 6, 7}, b = {1, 2, 3, 4, 5, 6}, l(6, 0);
  const auto mean = [](std::span<const double> s, std::span<const double>) {
    return Summarize(s).mean;
  };
  const PairedTest t = PairedPermutation(a, b, l, mean, {.resamples = 20000, .seed = 2});
  EXPECT_EQ(t.difference, 1.0);
  EXPECT_NEAR(t.p_value, 1.0 / 32.0, 0.005);
}

TEST(ResamplingTest, RejectsBadOptions) {
  EXPECT_THROW(BootstrapCi(kScoresA, kLabelsA, SpearmanMetric, {.resamples = 0}), UsageError);
  EXPECT_THROW(BootstrapCi(kScoresA, kLabelsA, SpearmanMetric, {.level = 1.0}), UsageError);
  EXPECT_THROW(PairedBootstrap(kScoresA, kX, kLabelsA, SpearmanMetric), UsageError);
  EXPECT_THROW(BootstrapCi(std::vector<double>{}, std::vector<double>{}, SpearmanMetric),
               UsageError);
}

}  // namespace
}  // namespace rwkv_embed::metrics
