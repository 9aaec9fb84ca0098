#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.h"

namespace rwkv_embed::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void CheckFinite(std::span<const double> v, const char* what) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      throw NumericError(std::string(what) + "[" + std::to_string(i) + "] is " +
                         std::to_string(v[i]) + " (metrics need finite values; count and " +
                         "replace undefined scores before scoring)");
    }
  }
}

void CheckPaired(std::span<const double> x, std::span<const double> y, const char* x_name,
                 const char* y_name, size_t min_size) {
  if (x.size() != y.size()) {
    throw UsageError(std::string(x_name) + " has " + std::to_string(x.size()) + " values but " +
                     y_name + " has " + std::to_string(y.size()));
  }
  if (x.size() < min_size) {
    throw UsageError("need at least " + std::to_string(min_size) + " values, got " +
                     std::to_string(x.size()));
  }
  CheckFinite(x, x_name);
  CheckFinite(y, y_name);
}

// Number of positive labels; every label must be 0 or 1.
int64_t CountPositives(std::span<const double> labels) {
  int64_t positives = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == 1.0) {
      ++positives;
    } else if (labels[i] != 0.0) {
      throw DataError("labels[" + std::to_string(i) + "] is " + std::to_string(labels[i]) +
                      "; binary metrics need labels 0 or 1");
    }
  }
  return positives;
}

bool IsConstant(std::span<const double> x) {
  return std::all_of(x.begin(), x.end(), [&](double v) { return v == x[0]; });
}

// Indices of scores sorted by decreasing score.
std::vector<size_t> OrderByDecreasingScore(std::span<const double> scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

double F1(int64_t tp, int64_t fp, int64_t fn) {
  return tp == 0 ? 0.0 : 2.0 * tp / static_cast<double>(2 * tp + fp + fn);
}

}  // namespace

double CosineSimilarity(const float* a, const float* b, int64_t dim) {
  double dot = 0, norm_a = 0, norm_b = 0;
  for (int64_t i = 0; i < dim; ++i) {
    const double x = a[i], y = b[i];
    dot += x * y;
    norm_a += x * x;
    norm_b += y * y;
  }
  if (norm_a == 0 || norm_b == 0) return kNaN;
  const double c = dot / (std::sqrt(norm_a) * std::sqrt(norm_b));
  return std::isnan(c) ? kNaN : std::clamp(c, -1.0, 1.0);
}

double CosineSimilarity(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) {
    throw UsageError("cosine of vectors of different sizes " + std::to_string(a.size()) + " and " +
                     std::to_string(b.size()));
  }
  return CosineSimilarity(a.data(), b.data(), static_cast<int64_t>(a.size()));
}

std::vector<double> AverageRanks(std::span<const double> x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && x[order[j]] == x[order[i]]) ++j;
    // Sorted positions i..j-1 hold ranks i+1..j; each gets their mean.
    const double rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k) ranks[order[k]] = rank;
    i = j;
  }
  return ranks;
}

double Pearson(std::span<const double> x, std::span<const double> y) {
  CheckPaired(x, y, "x", "y", 2);
  if (IsConstant(x) || IsConstant(y)) return kNaN;
  const double n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  // Two-pass (centred) sums, as scipy.stats.pearsonr: r = Σ dx dy / sqrt(Σ dx² Σ dy²).
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = x[i] - mean_x, dy = y[i] - mean_y;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return std::clamp(sxy / (std::sqrt(sxx) * std::sqrt(syy)), -1.0, 1.0);
}

double Spearman(std::span<const double> x, std::span<const double> y) {
  CheckPaired(x, y, "x", "y", 2);
  const std::vector<double> rx = AverageRanks(x), ry = AverageRanks(y);
  return Pearson(rx, ry);
}

double RocAuc(std::span<const double> scores, std::span<const double> labels) {
  CheckPaired(scores, labels, "scores", "labels", 1);
  const int64_t positives = CountPositives(labels);
  const int64_t negatives = static_cast<int64_t>(labels.size()) - positives;
  if (positives == 0 || negatives == 0) return kNaN;
  // Mann–Whitney: U = R_pos - n_pos (n_pos + 1) / 2 with average ranks (ties count 1/2).
  const std::vector<double> ranks = AverageRanks(scores);
  double rank_sum = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == 1.0) rank_sum += ranks[i];
  }
  const double np = static_cast<double>(positives), nn = static_cast<double>(negatives);
  return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

double AveragePrecision(std::span<const double> scores, std::span<const double> labels) {
  CheckPaired(scores, labels, "scores", "labels", 1);
  const int64_t positives = CountPositives(labels);
  if (positives == 0) return kNaN;
  const std::vector<size_t> order = OrderByDecreasingScore(scores);
  double ap = 0, previous_recall = 0;
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size();) {
    // One distinct threshold: admit every item with this score.
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) {
      (labels[order[j]] == 1.0 ? tp : fp) += 1;
      ++j;
    }
    const double recall = static_cast<double>(tp) / static_cast<double>(positives);
    const double precision = static_cast<double>(tp) / static_cast<double>(tp + fp);
    ap += (recall - previous_recall) * precision;
    previous_recall = recall;
    i = j;
  }
  return ap;
}

Classification ClassificationAt(std::span<const double> scores, std::span<const double> labels,
                                double threshold) {
  CheckPaired(scores, labels, "scores", "labels", 1);
  CountPositives(labels);  // validates 0/1
  if (std::isnan(threshold)) throw NumericError("classification threshold is NaN");
  Classification c;
  c.threshold = threshold;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool predicted = scores[i] >= threshold;
    const bool actual = labels[i] == 1.0;
    if (predicted) {
      (actual ? c.tp : c.fp) += 1;
    } else {
      (actual ? c.fn : c.tn) += 1;
    }
  }
  const auto ratio = [](int64_t num, int64_t den) {
    return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
  };
  c.accuracy = ratio(c.tp + c.tn, static_cast<int64_t>(scores.size()));
  c.precision = ratio(c.tp, c.tp + c.fp);
  c.recall = ratio(c.tp, c.tp + c.fn);
  c.f1 = F1(c.tp, c.fp, c.fn);
  return c;
}

ThresholdFit FitThreshold(std::span<const double> scores, std::span<const double> labels,
                          ThresholdObjective objective) {
  CheckPaired(scores, labels, "scores", "labels", 1);
  const int64_t positives = CountPositives(labels);
  const int64_t n = static_cast<int64_t>(scores.size());
  const std::vector<size_t> order = OrderByDecreasingScore(scores);
  int64_t tp = 0, fp = 0;
  const auto value = [&] {
    return objective == ThresholdObjective::kAccuracy
               ? static_cast<double>(tp + (n - positives - fp)) / static_cast<double>(n)
               : F1(tp, fp, positives - tp);
  };
  // Highest candidate first: nothing predicted positive.
  ThresholdFit best{std::nextafter(scores[order[0]], INFINITY), value()};
  for (size_t i = 0; i < order.size();) {
    const double score = scores[order[i]];
    size_t j = i;
    for (; j < order.size() && scores[order[j]] == score; ++j) {
      (labels[order[j]] == 1.0 ? tp : fp) += 1;
    }
    // Any t in (next lower score, score] predicts exactly the items seen so far; take the midpoint
    // (robust when applied to another split), falling back to `score` if rounding lands on the
    // lower one.
    double threshold = score;
    if (j < order.size()) {
      const double lower = scores[order[j]];
      threshold = std::midpoint(lower, score);
      if (threshold <= lower) threshold = score;
    }
    if (const double v = value(); v > best.objective) best = {threshold, v};
    i = j;
  }
  return best;
}

Summary Summarize(std::span<const double> values) {
  if (values.empty()) throw UsageError("summary of an empty vector");
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) {
      throw NumericError("summary input [" + std::to_string(i) + "] is NaN");
    }
  }
  Summary s;
  s.n = static_cast<int64_t>(values.size());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(s.n);
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.sd = s.n > 1 ? std::sqrt(squares / static_cast<double>(s.n - 1)) : kNaN;
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  s.min = *lo;
  s.max = *hi;
  return s;
}

double Percentile(std::span<const double> values, double q) {
  if (values.empty()) throw UsageError("percentile of an empty vector");
  if (!(q >= 0 && q <= 100))
    throw UsageError("percentile " + std::to_string(q) + " not in [0, 100]");
  CheckFinite(values, "percentile input");
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  // numpy "linear": h = (n - 1) q / 100; interpolate between order statistics floor(h), floor(h)+1.
  const double h = static_cast<double>(sorted.size() - 1) * q / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  const double t = h - static_cast<double>(lo);
  return sorted[lo] + t * (sorted[lo + 1] - sorted[lo]);
}

}  // namespace rwkv_embed::metrics
