// Resampling statistics over sentence pairs: bootstrap confidence intervals, a paired bootstrap
// test and a paired permutation test, for any metric of (scores, labels). Every random draw comes
// from PortableRng(seed) in a documented order, so results are identical on every platform (and
// tests/metrics_test.cc reproduces them with a Python re-implementation).
//
// A metric may be undefined on a resample (Spearman of a resample with a single label class is
// NaN): such resamples are excluded from the interval / p-value and counted in `undefined`.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace rwkv_embed::metrics {

// A metric of paired scores and labels, e.g. Spearman, RocAuc.
using PairMetric =
    std::function<double(std::span<const double> scores, std::span<const double> labels)>;

struct ResampleOptions {
  int64_t resamples = 1000;  // B
  uint64_t seed = 0;
  double level = 0.95;  // confidence level of the interval
};

struct ConfidenceInterval {
  double estimate = 0;  // metric on the full sample
  double lo = 0, hi = 0;
  double level = 0;
  int64_t resamples = 0;  // B
  int64_t undefined = 0;  // resamples where the metric was NaN (excluded)
};

// Percentile bootstrap (Efron & Tibshirani 1993, §13.3): B resamples of the n pairs with
// replacement; lo/hi = the (1-level)/2 and (1+level)/2 percentiles (numpy "linear") of the
// defined resampled metrics. Draw order: for b in 0..B-1, for i in 0..n-1, index = Below(n).
// A NaN estimate or no defined resample gives NaN lo/hi.
ConfidenceInterval BootstrapCi(std::span<const double> scores, std::span<const double> labels,
                               const PairMetric& metric, const ResampleOptions& options = {});

struct PairedTest {
  double estimate_a = 0, estimate_b = 0;
  double difference = 0;  // metric(A) - metric(B) on the full sample
  double lo = 0, hi = 0;  // percentile interval of the difference (paired bootstrap only; NaN for
                          // the permutation test)
  double p_value = 0;     // two-sided
  int64_t resamples = 0;
  int64_t undefined = 0;
};

// Paired bootstrap of d = metric(A) - metric(B) on the same pairs: each resample draws one set of
// pair indices (same order as BootstrapCi) used for both systems. Interval: percentile interval of
// d*. Two-sided p-value against d = 0 from the bootstrap distribution shifted to the null
// (Hall & Wilson 1991; Berg-Kirkpatrick et al. 2012): p = #{|d*_b - d| >= |d|} / B_defined.
PairedTest PairedBootstrap(std::span<const double> scores_a, std::span<const double> scores_b,
                           std::span<const double> labels, const PairMetric& metric,
                           const ResampleOptions& options = {});

// Paired permutation (swap) test: under H0 the two systems' scores for a pair are exchangeable, so
// each permutation swaps A's and B's score of pair i when the top bit of the next 64-bit draw is 1
// (i = 0..n-1); for a mean of per-pair differences this is the sign-flip test. p = (1 + #{|d_p| >=
// |d|}) / (1 + P_defined) (Phipson & Smyth 2010: never 0). `level` is unused.
PairedTest PairedPermutation(std::span<const double> scores_a, std::span<const double> scores_b,
                             std::span<const double> labels, const PairMetric& metric,
                             const ResampleOptions& options = {});

}  // namespace rwkv_embed::metrics
