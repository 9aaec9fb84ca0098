#include "analysis/statistics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "analysis/linalg.h"
#include "core/error.h"

namespace rwkv_embed::analysis {
namespace {

const float* RowPtr(const RowSet& x, int64_t r) {
  return x.data + r * (x.stride == 0 ? x.cols : x.stride);
}

std::vector<double> RowMean(const RowSet& x) {
  std::vector<double> mean(x.cols, 0.0);
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* row = RowPtr(x, r);
    for (int64_t j = 0; j < x.cols; ++j) mean[j] += row[j];
  }
  if (x.rows > 0) {
    for (double& m : mean) m /= static_cast<double>(x.rows);
  }
  return mean;
}

// Rows minus `shift` (may be empty: no shift), as double [rows, cols].
std::vector<double> Shifted(const RowSet& x, const std::vector<double>& shift) {
  std::vector<double> out(x.rows * x.cols);
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* row = RowPtr(x, r);
    double* o = out.data() + r * x.cols;
    for (int64_t j = 0; j < x.cols; ++j) o[j] = row[j] - (shift.empty() ? 0.0 : shift[j]);
  }
  return out;
}

double Dot(const double* a, const double* b, int64_t n) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += a[j] * b[j];
  return s;
}

// Keeps the non-zero rows of z [rows, cols], each scaled to unit length; returns how many.
int64_t NormaliseRows(std::vector<double>* z, int64_t rows, int64_t cols) {
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double* row = z->data() + r * cols;
    const double norm = std::sqrt(Dot(row, row, cols));
    if (norm == 0.0) continue;
    double* dst = z->data() + kept * cols;
    for (int64_t j = 0; j < cols; ++j) dst[j] = row[j] / norm;
    ++kept;
  }
  z->resize(kept * cols);
  return kept;
}

}  // namespace

double RenyiEntropy(std::span<const double> p, double alpha) {
  if (!(alpha > 0.0) || !std::isfinite(alpha)) {
    throw UsageError("Renyi entropy order alpha must be a finite number > 0, got " +
                     std::to_string(alpha));
  }
  if (alpha == 1.0) {
    double s = 0.0;
    for (double v : p) {
      if (v > 0.0) s -= v * std::log(v);
    }
    return s;
  }
  double sum = 0.0;
  for (double v : p) {
    if (v > 0.0) sum += std::pow(v, alpha);
  }
  return std::log(sum) / (1.0 - alpha);
}

std::vector<double> CentredUnitRows(const RowSet& x, int64_t* kept) {
  std::vector<double> z = Shifted(x, RowMean(x));
  *kept = NormaliseRows(&z, x.rows, x.cols);
  return z;
}

double MatrixEntropy(const RowSet& x, double alpha) {
  int64_t kept = 0;
  const std::vector<double> z = CentredUnitRows(x, &kept);
  const int64_t dim = std::min(kept, x.cols);
  if (dim < 2) {
    // Guards alpha too, so a bad alpha never passes silently on a degenerate set.
    RenyiEntropy({}, alpha);
    return 0.0;
  }
  int64_t side = 0;
  std::vector<double> gram = SmallerGram(z.data(), kept, x.cols, &side);
  std::vector<double> lambda = SymmetricEigenvalues(std::move(gram), side);
  // tr K = number of unit rows (exactly, up to rounding); the eigenvalues' sum is the same trace.
  const double trace = static_cast<double>(kept);
  for (double& l : lambda) l /= trace;
  return RenyiEntropy(lambda, alpha) / std::log(static_cast<double>(dim));
}

AngleSum TrajectoryAngles(const RowSet& x) {
  AngleSum a;
  const int64_t c = x.cols;
  std::vector<double> prev(c), cur(c);
  double prev_norm = 0.0;
  for (int64_t t = 0; t + 1 < x.rows; ++t) {
    const float* h0 = RowPtr(x, t);
    const float* h1 = RowPtr(x, t + 1);
    for (int64_t j = 0; j < c; ++j) cur[j] = static_cast<double>(h1[j]) - h0[j];
    const double norm = std::sqrt(Dot(cur.data(), cur.data(), c));
    if (t > 0 && norm > 0.0 && prev_norm > 0.0) {
      const double cosine = std::clamp(Dot(prev.data(), cur.data(), c) / (prev_norm * norm), -1.0,
                                       1.0);  // rounding can step past +-1
      a.sum += std::acos(cosine);
      ++a.count;
    }
    std::swap(prev, cur);
    prev_norm = norm;
  }
  return a;
}

std::optional<double> Anisotropy(const RowSet& x, bool centred) {
  std::vector<double> z = Shifted(x, centred ? RowMean(x) : std::vector<double>{});
  const int64_t n = NormaliseRows(&z, x.rows, x.cols);
  if (n < 2) return std::nullopt;
  // sum_{i != j} u_i . u_j = |sum u|^2 - sum |u_i|^2, and each |u_i| = 1.
  std::vector<double> sum(x.cols, 0.0);
  double self = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const double* u = z.data() + r * x.cols;
    for (int64_t j = 0; j < x.cols; ++j) sum[j] += u[j];
    self += Dot(u, u, x.cols);
  }
  const double nd = static_cast<double>(n);
  return (Dot(sum.data(), sum.data(), x.cols) - self) / (nd * (nd - 1.0));
}

double EffectiveRank(std::span<const double> singular_values) {
  double total = 0.0;
  for (double s : singular_values) total += std::max(s, 0.0);
  if (total == 0.0) return 0.0;
  std::vector<double> p;
  p.reserve(singular_values.size());
  for (double s : singular_values) p.push_back(std::max(s, 0.0) / total);
  return std::exp(RenyiEntropy(p, 1.0));
}

std::vector<double> RowSingularValues(const RowSet& x, bool centred) {
  const std::vector<double> z = Shifted(x, centred ? RowMean(x) : std::vector<double>{});
  return SingularValues(z.data(), x.rows, x.cols);
}

DecayFit FitPowerLawDecay(std::span<const double> singular_values) {
  DecayFit fit;
  if (singular_values.empty() || !(singular_values[0] > 0.0)) return fit;
  const double floor = 1e-10 * singular_values[0];
  std::vector<double> lx, ly;
  for (size_t i = 0; i < singular_values.size(); ++i) {
    if (singular_values[i] > floor) {
      lx.push_back(std::log(static_cast<double>(i + 1)));
      ly.push_back(std::log(singular_values[i]));
    }
  }
  fit.points = static_cast<int64_t>(lx.size());
  if (fit.points < 2) return fit;
  const double n = static_cast<double>(lx.size());
  const double mx = std::accumulate(lx.begin(), lx.end(), 0.0) / n;
  const double my = std::accumulate(ly.begin(), ly.end(), 0.0) / n;
  double sxx = 0.0, sxy = 0.0, syy = 0.0;
  for (size_t i = 0; i < lx.size(); ++i) {
    sxx += (lx[i] - mx) * (lx[i] - mx);
    sxy += (lx[i] - mx) * (ly[i] - my);
    syy += (ly[i] - my) * (ly[i] - my);
  }
  fit.exponent = -sxy / sxx;
  fit.r2 = syy > 0.0 ? sxy * sxy / (sxx * syy) : 1.0;
  return fit;
}

}  // namespace rwkv_embed::analysis
