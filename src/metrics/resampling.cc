#include "metrics/resampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "metrics/metrics.h"

namespace rwkv_embed::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void CheckInputs(size_t n, std::span<const double> labels, const ResampleOptions& options,
                 size_t other_size = std::numeric_limits<size_t>::max()) {
  if (n == 0) throw UsageError("resampling needs at least one pair");
  if (labels.size() != n || (other_size != std::numeric_limits<size_t>::max() && other_size != n)) {
    throw UsageError("resampling inputs differ in size (" + std::to_string(n) + " scores, " +
                     std::to_string(labels.size()) + " labels)");
  }
  if (options.resamples < 1) {
    throw UsageError("resamples must be >= 1, got " + std::to_string(options.resamples));
  }
  if (!(options.level > 0 && options.level < 1)) {
    throw UsageError("confidence level must be in (0, 1), got " + std::to_string(options.level));
  }
}

// |x| >= |observed|, forgiving rounding noise of ~1e-12 relative so that a resample reproducing
// the observed statistic (e.g. the identity permutation) always counts.
bool AtLeastAsExtreme(double x, double observed) {
  return std::abs(x) >= std::abs(observed) - 1e-12 * std::max(1.0, std::abs(observed));
}

// Percentile interval of the defined values; NaN/NaN when there are none.
void PercentileInterval(std::span<const double> values, double level, double* lo, double* hi) {
  if (values.empty()) {
    *lo = *hi = kNaN;
    return;
  }
  *lo = Percentile(values, 50.0 * (1.0 - level));
  *hi = Percentile(values, 50.0 * (1.0 + level));
}

// Draws one bootstrap resample of n indices into `index`.
void DrawResample(PortableRng& rng, std::vector<size_t>& index) {
  for (size_t& i : index) i = static_cast<size_t>(rng.Below(index.size()));
}

template <typename Src>
void Gather(const Src& src, const std::vector<size_t>& index, std::vector<double>& dst) {
  for (size_t i = 0; i < index.size(); ++i) dst[i] = src[index[i]];
}

}  // namespace

namespace {

// Validated inputs and the point estimates shared by both paired tests.
PairedTest PairedEstimates(std::span<const double> scores_a, std::span<const double> scores_b,
                           std::span<const double> labels, const PairMetric& metric,
                           const ResampleOptions& options) {
  CheckInputs(scores_a.size(), labels, options, scores_b.size());
  PairedTest t;
  t.estimate_a = metric(scores_a, labels);
  t.estimate_b = metric(scores_b, labels);
  t.difference = t.estimate_a - t.estimate_b;
  t.resamples = options.resamples;
  return t;
}

}  // namespace

ConfidenceInterval BootstrapCi(std::span<const double> scores, std::span<const double> labels,
                               const PairMetric& metric, const ResampleOptions& options) {
  CheckInputs(scores.size(), labels, options);
  ConfidenceInterval ci;
  ci.estimate = metric(scores, labels);
  ci.level = options.level;
  ci.resamples = options.resamples;
  if (std::isnan(ci.estimate)) {
    ci.lo = ci.hi = kNaN;
    return ci;
  }
  const size_t n = scores.size();
  PortableRng rng(options.seed);
  std::vector<size_t> index(n);
  std::vector<double> s(n), l(n), defined;
  defined.reserve(static_cast<size_t>(options.resamples));
  for (int64_t b = 0; b < options.resamples; ++b) {
    DrawResample(rng, index);
    Gather(scores, index, s);
    Gather(labels, index, l);
    const double v = metric(s, l);
    if (std::isnan(v)) {
      ++ci.undefined;
    } else {
      defined.push_back(v);
    }
  }
  PercentileInterval(defined, options.level, &ci.lo, &ci.hi);
  return ci;
}

PairedTest PairedBootstrap(std::span<const double> scores_a, std::span<const double> scores_b,
                           std::span<const double> labels, const PairMetric& metric,
                           const ResampleOptions& options) {
  PairedTest t = PairedEstimates(scores_a, scores_b, labels, metric, options);
  if (std::isnan(t.difference)) {
    t.lo = t.hi = t.p_value = kNaN;
    return t;
  }
  const size_t n = labels.size();
  PortableRng rng(options.seed);
  std::vector<size_t> index(n);
  std::vector<double> a(n), b(n), l(n), defined;
  int64_t extreme = 0;
  for (int64_t r = 0; r < options.resamples; ++r) {
    DrawResample(rng, index);
    Gather(scores_a, index, a);
    Gather(scores_b, index, b);
    Gather(labels, index, l);
    const double d = metric(a, l) - metric(b, l);
    if (std::isnan(d)) {
      ++t.undefined;
      continue;
    }
    defined.push_back(d);
    if (AtLeastAsExtreme(d - t.difference, t.difference)) ++extreme;
  }
  PercentileInterval(defined, options.level, &t.lo, &t.hi);
  t.p_value =
      defined.empty() ? kNaN : static_cast<double>(extreme) / static_cast<double>(defined.size());
  return t;
}

PairedTest PairedPermutation(std::span<const double> scores_a, std::span<const double> scores_b,
                             std::span<const double> labels, const PairMetric& metric,
                             const ResampleOptions& options) {
  PairedTest t = PairedEstimates(scores_a, scores_b, labels, metric, options);
  t.lo = t.hi = kNaN;
  if (std::isnan(t.difference)) {
    t.p_value = kNaN;
    return t;
  }
  const size_t n = labels.size();
  PortableRng rng(options.seed);
  std::vector<double> a(n), b(n);
  int64_t extreme = 0, defined = 0;
  for (int64_t r = 0; r < options.resamples; ++r) {
    for (size_t i = 0; i < n; ++i) {
      const bool swap = (rng.Next() >> 63) != 0;
      a[i] = swap ? scores_b[i] : scores_a[i];
      b[i] = swap ? scores_a[i] : scores_b[i];
    }
    const double d = metric(a, labels) - metric(b, labels);
    if (std::isnan(d)) {
      ++t.undefined;
      continue;
    }
    ++defined;
    if (AtLeastAsExtreme(d, t.difference)) ++extreme;
  }
  t.p_value = static_cast<double>(1 + extreme) / static_cast<double>(1 + defined);
  return t;
}

}  // namespace rwkv_embed::metrics
