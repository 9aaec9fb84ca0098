// Estimators of the layer analysis (issue 9), on plain row sets: they know nothing about models.
// Inputs are float rows (hidden states, pooled vectors, weight rows); everything is computed in
// double. Definitions (docs/evaluation.md#layer-analysis):
//  - matrix entropy (Skean et al. 2025, "Layer by Layer", arXiv 2502.02013): subtract the rows'
//    mean, L2-normalise each row (zero rows dropped), K = Z Z^T, lambda = eigenvalues of K / tr K,
//    S_alpha = log(sum lambda^alpha) / (1 - alpha) (alpha = 1: -sum lambda log lambda, natural
//    log), divided by log(min(rows kept, C)). Fewer than 2 rows kept (e.g. identical rows, which
//    centre to zero) means no spread: entropy 0.
//  - curvature: steps v_t = h_{t+1} - h_t, the mean over t of arccos(cos(v_t, v_{t+1})) in
//    radians, over pairs of successive steps that are both non-zero.
//  - anisotropy: the mean cosine over all unordered pairs of distinct non-zero rows, exact for any
//    n from (|sum u|^2 - n) / (n (n - 1)) with u the unit rows (no sampling needed).
//  - effective rank (Roy & Vetterli 2007): exp(-sum p log p), p = sigma / sum sigma.
//  - spectral decay: least-squares slope p of log sigma_i = a - p log i (i = 1-based rank), a
//    power law sigma_i ~ i^-p, over the singular values above 1e-10 sigma_1.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace rwkv_embed::analysis {

// Rows of a row-major float matrix: row r starts at data + r * stride.
struct RowSet {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;  // 0 = cols
};

// Rényi entropy (natural log) of a probability vector; alpha = 1 is the Shannon limit. Entries
// <= 0 (a zero eigenvalue that rounding made slightly negative) contribute nothing.
double RenyiEntropy(std::span<const double> p, double alpha);

// The normalised matrix entropy of the rows, in [0, 1] (definition above). alpha > 0.
double MatrixEntropy(const RowSet& x, double alpha = 1.0);

// The same set of rows, centred and row-normalised, kept as double [kept, cols] (for callers
// that want the spectrum itself).
std::vector<double> CentredUnitRows(const RowSet& x, int64_t* kept);

// Curvature of the trajectory x_0 .. x_{T-1}: sum of the angles and how many there were (texts
// are averaged by the caller). Zero angles when T < 3.
struct AngleSum {
  double sum = 0.0;
  int64_t count = 0;
};
AngleSum TrajectoryAngles(const RowSet& x);

// Mean pairwise cosine of the non-zero rows (optionally after subtracting the mean of all rows);
// nullopt with fewer than 2 non-zero rows.
std::optional<double> Anisotropy(const RowSet& x, bool centred);

// exp of the entropy of sigma / sum sigma; 0 for an all-zero spectrum.
double EffectiveRank(std::span<const double> singular_values);

// Singular values of the rows (optionally centred), descending.
std::vector<double> RowSingularValues(const RowSet& x, bool centred);

struct DecayFit {
  double exponent = 0.0;  // p in sigma_i ~ i^-p (the negated slope of log sigma vs log i)
  double r2 = 0.0;        // coefficient of determination of the fit
  int64_t points = 0;     // singular values used
};
// Needs >= 2 singular values above 1e-10 sigma_1; else points < 2 and exponent 0.
DecayFit FitPowerLawDecay(std::span<const double> singular_values);

}  // namespace rwkv_embed::analysis
