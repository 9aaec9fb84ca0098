// Training of the small pooling parameters (layer weights, an attention query) on the fitting
// split's labelled pairs with the backbone frozen.
//
// Objective: maximise the Pearson correlation between the pairs' cosine similarities and their
// labels: a smooth surrogate of the Spearman correlation the harness scores (for binary labels it
// is the point-biserial correlation). Gradients are written by hand (tests check them against
// finite differences). Optimiser: Adam (full batch), from a start that equals the untrained method
// (uniform layer weights = mean fusion; q = 0 = mean pooling), with early stopping: a seeded
// `holdout` share of the fitting pairs is held out, and the parameters with the best held-out
// correlation are kept (stop after `patience` steps without improvement).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rwkv_embed::methods {

// r = Pearson(c, y); grad (if given) receives dr/dc. r = 0 and a zero gradient when c or y is
// constant.
double PearsonWithGradient(std::span<const double> c, std::span<const double> y,
                           std::vector<double>* grad);

// Cosine of a and b (dim d) and its gradients with respect to a and b (added, times `scale`, to
// grad_a, grad_b). Zero vectors: cosine 0, no gradient.
double CosineWithGradient(const double* a, const double* b, int64_t d, double scale, double* grad_a,
                          double* grad_b);

struct TrainOptions {
  uint64_t seed = 0;
  int max_steps = 300;
  double learning_rate = 0.05;
  double holdout = 0.2;  // share of the fitting pairs held out for early stopping
  int patience = 30;
};

// The fitting pairs split into training and held-out rows (a seeded shuffle).
struct PairSplit {
  std::vector<int64_t> train, holdout;
};
PairSplit SplitPairs(int64_t n_pairs, const TrainOptions& options);

// objective(theta, pair indices, grad) -> correlation on those pairs (grad: d/dtheta, may be null).
using PairObjective =
    std::function<double(std::span<const double>, std::span<const int64_t>, std::vector<double>*)>;

struct TrainResult {
  std::vector<double> theta;
  int steps = 0, best_step = 0;
  double start_train = 0, start_holdout = 0;  // correlations at theta0
  double train = 0, holdout = 0;              // at the kept theta
  std::string Summary() const;
};
TrainResult TrainAscent(const PairObjective& objective, const std::vector<double>& theta0,
                        const PairSplit& split, const TrainOptions& options);

}  // namespace rwkv_embed::methods
