// Point metrics for scoring sentence-pair similarities against labels, with the exact definitions
// of SciPy 1.10 / scikit-learn 1.2 (the values in tests/metrics_test.cc come from those libraries).
//
// Conventions shared by every function here:
// - scores/labels are parallel arrays; a size mismatch or too few items is a UsageError.
// - A NaN or infinite score or label is a NumericError naming its index: an undefined cosine (zero
//   vector) must be counted and replaced by the caller on purpose, never turned into 0 here.
// - Binary metrics (ROC-AUC, AP, thresholds) need labels exactly 0 or 1, else DataError.
// - A metric that is mathematically undefined for valid input (a constant vector for a
//   correlation, a single class for ROC-AUC / AP) returns NaN; reports write it as null.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace rwkv_embed::metrics {

// cos(a, b) = a·b / (|a| |b|), accumulated in double and clamped to [-1, 1] (rounding can
// overshoot by an ulp). Returns NaN when either vector has zero norm (cosine is undefined: a
// sentence without any known word under GloVe) or holds NaN/Inf; the caller decides and counts.
double CosineSimilarity(const float* a, const float* b, int64_t dim);
double CosineSimilarity(std::span<const float> a, std::span<const float> b);

// 1-based ranks with ties given the average of the ranks they span
// (scipy.stats.rankdata(x, method="average")).
std::vector<double> AverageRanks(std::span<const double> x);

// Pearson's r (scipy.stats.pearsonr). NaN if x or y is constant. n >= 2.
double Pearson(std::span<const double> x, std::span<const double> y);

// Spearman's rho = Pearson's r of the average ranks (scipy.stats.spearmanr), so binary labels
// (all ties) are handled. NaN if x or y is constant (SciPy returns nan too). n >= 2.
double Spearman(std::span<const double> x, std::span<const double> y);

// Area under the ROC curve = the Mann–Whitney U statistic / (n_pos n_neg), a tied score between a
// positive and a negative counting 1/2 (sklearn.metrics.roc_auc_score). NaN if a class is absent
// (sklearn raises).
double RocAuc(std::span<const double> scores, std::span<const double> labels);

// Average precision AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds in
// decreasing order, R_0 = 0 (sklearn.metrics.average_precision_score; no interpolation). NaN if
// there is no positive label (recall is undefined).
double AveragePrecision(std::span<const double> scores, std::span<const double> labels);

// Classification by "score >= threshold -> positive".
struct Classification {
  double threshold = 0;
  double accuracy = 0;
  double precision = 0;  // TP / (TP + FP); 0 when nothing is predicted positive (sklearn's
                         // zero_division default)
  double recall = 0;     // TP / (TP + FN); 0 when there is no positive label
  double f1 = 0;         // 2TP / (2TP + FP + FN); 0 when TP = 0
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};

Classification ClassificationAt(std::span<const double> scores, std::span<const double> labels,
                                double threshold);

enum class ThresholdObjective { kAccuracy, kF1 };

struct ThresholdFit {
  double threshold = 0;
  double objective = 0;  // accuracy or F1 reached on the fitting data
};

// The threshold maximising the objective on (scores, labels) — meant to be fitted on one split
// and applied with ClassificationAt to another (fitting on the split being scored, as MTEB's
// _find_best_acc_and_threshold does, is optimistically biased). Candidates: every cut between
// adjacent distinct scores, placed at the midpoint, plus "all positive" (threshold = min score)
// and "all negative" (just above the max score). Ties in the objective go to the highest
// threshold (the most conservative rule).
ThresholdFit FitThreshold(std::span<const double> scores, std::span<const double> labels,
                          ThresholdObjective objective);

// Descriptive statistics of a vector (e.g. a metric over several subset seeds): sd is the sample
// standard deviation (ddof = 1, numpy.std(x, ddof=1)), NaN for n = 1. Empty input: UsageError.
// NaN values are a NumericError.
struct Summary {
  int64_t n = 0;
  double mean = 0, sd = 0, min = 0, max = 0;
};
Summary Summarize(std::span<const double> values);

// The q-th percentile, q in [0, 100], by linear interpolation between order statistics
// (numpy.percentile's default method "linear"). Empty input: UsageError.
double Percentile(std::span<const double> values, double q);

}  // namespace rwkv_embed::metrics
