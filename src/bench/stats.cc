#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"

namespace rwkv_embed::bench {

double Mean(std::span<const double> values) {
  if (values.empty()) throw UsageError("mean of an empty sample");
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double SampleStddev(std::span<const double> values) {
  const double mean = Mean(values);
  if (values.size() < 2) return 0.0;
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / static_cast<double>(values.size() - 1));
}

double Percentile(std::span<const double> values, double p) {
  if (values.empty()) throw UsageError("percentile of an empty sample");
  if (!(p >= 0.0 && p <= 100.0)) {
    throw UsageError("percentile " + std::to_string(p) + " outside [0, 100]");
  }
  std::vector<double> sorted(values.begin(), values.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (std::isnan(sorted[i])) {
      throw NumericError("percentile: sample value " + std::to_string(i) + " is NaN");
    }
  }
  std::sort(sorted.begin(), sorted.end());
  const double h = static_cast<double>(sorted.size() - 1) * p / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

PowerLawFit FitPowerLaw(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) {
    throw UsageError("power-law fit: " + std::to_string(x.size()) + " x values but " +
                     std::to_string(y.size()) + " y values");
  }
  const size_t n = x.size();
  std::vector<double> lx(n), ly(n);
  for (size_t i = 0; i < n; ++i) {
    if (!(std::isfinite(x[i]) && x[i] > 0 && std::isfinite(y[i]) && y[i] > 0)) {
      throw UsageError("power-law fit: point " + std::to_string(i) + " (" + std::to_string(x[i]) +
                       ", " + std::to_string(y[i]) + ") is not finite and positive");
    }
    lx[i] = std::log(x[i]);
    ly[i] = std::log(y[i]);
  }
  if (n < 2) throw UsageError("power-law fit needs at least two points");
  const double mx = Mean(lx), my = Mean(ly);
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (lx[i] - mx) * (lx[i] - mx);
    sxy += (lx[i] - mx) * (ly[i] - my);
    syy += (ly[i] - my) * (ly[i] - my);
  }
  if (sxx == 0) throw UsageError("power-law fit needs at least two distinct x values");
  PowerLawFit fit;
  fit.exponent = sxy / sxx;
  fit.coefficient = std::exp(my - fit.exponent * mx);
  // Residual sum of squares of the regression line; R^2 = 1 - SSres/SStot (1 if y is constant).
  const double ss_res = syy - fit.exponent * sxy;
  fit.r_squared = syy > 0 ? std::clamp(1.0 - ss_res / syy, 0.0, 1.0) : 1.0;
  return fit;
}

}  // namespace rwkv_embed::bench
