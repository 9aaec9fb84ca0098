// Small statistics for benchmark samples: mean/stddev, percentiles, power-law fits.
#pragma once

#include <span>

namespace rwkv_embed::bench {

// Arithmetic mean; UsageError when empty.
double Mean(std::span<const double> values);

// Sample standard deviation (n - 1 denominator, as llama-bench reports); 0 for one value.
double SampleStddev(std::span<const double> values);

// The p-th percentile (0 <= p <= 100) by linear interpolation between order statistics: rank
// h = (n - 1) p / 100, result = v[floor h] + (h - floor h)(v[floor h + 1] - v[floor h]).
// This is Hyndman & Fan (1996) type 7, NumPy's and R's default, so numbers match np.percentile.
// UsageError for an empty sample or p outside [0, 100]; NumericError for a NaN value.
double Percentile(std::span<const double> values, double p);

// y ~= coefficient * x^exponent, fitted by ordinary least squares on (ln x, ln y):
// exponent = cov(ln x, ln y) / var(ln x). For a run time vs sequence length, exponent 1 is linear
// (RWKV), 2 quadratic (attention without a cache).
struct PowerLawFit {
  double exponent = 0;
  double coefficient = 0;
  double r_squared = 0;  // of the log-log regression; 1 when all points lie on the line
};

// UsageError for mismatched sizes, fewer than two distinct x, or any x or y that is not finite
// and > 0 (logarithms of them are undefined).
PowerLawFit FitPowerLaw(std::span<const double> x, std::span<const double> y);

}  // namespace rwkv_embed::bench
