#include "methods/training.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/random.h"

namespace rwkv_embed::methods {

double PearsonWithGradient(std::span<const double> c, std::span<const double> y,
                           std::vector<double>* grad) {
  const size_t n = c.size();
  double mc = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mc += c[i];
    my += y[i];
  }
  mc /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double scy = 0, scc = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    scy += (c[i] - mc) * (y[i] - my);
    scc += (c[i] - mc) * (c[i] - mc);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (grad != nullptr) grad->assign(n, 0.0);
  if (scc <= 0 || syy <= 0) return 0;
  const double sc = std::sqrt(scc), sy = std::sqrt(syy);
  const double r = scy / (sc * sy);
  if (grad != nullptr) {
    // dr/dc_i = (y_i - my) / (sc sy) - r (c_i - mc) / scc  (the mean terms sum to zero).
    for (size_t i = 0; i < n; ++i) (*grad)[i] = (y[i] - my) / (sc * sy) - r * (c[i] - mc) / scc;
  }
  return r;
}

double CosineWithGradient(const double* a, const double* b, int64_t d, double scale, double* grad_a,
                          double* grad_b) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t k = 0; k < d; ++k) {
    ab += a[k] * b[k];
    aa += a[k] * a[k];
    bb += b[k] * b[k];
  }
  if (aa <= 0 || bb <= 0) return 0;
  const double na = std::sqrt(aa), nb = std::sqrt(bb);
  const double cos = ab / (na * nb);
  // d cos / da = b / (|a||b|) - cos a / |a|^2
  for (int64_t k = 0; k < d; ++k) {
    if (grad_a != nullptr) grad_a[k] += scale * (b[k] / (na * nb) - cos * a[k] / aa);
    if (grad_b != nullptr) grad_b[k] += scale * (a[k] / (na * nb) - cos * b[k] / bb);
  }
  return cos;
}

PairSplit SplitPairs(int64_t n_pairs, const TrainOptions& options) {
  if (!(options.holdout > 0 && options.holdout < 1)) {
    throw UsageError("training holdout share must be in (0, 1)");
  }
  PortableRng rng(options.seed);
  const std::vector<size_t> order =
      rng.SampleWithoutReplacement(static_cast<size_t>(n_pairs), static_cast<size_t>(n_pairs));
  const int64_t n_holdout =
      std::max<int64_t>(1, std::llround(options.holdout * static_cast<double>(n_pairs)));
  if (n_pairs - n_holdout < 3 || n_holdout < 3) {
    throw DataError("training needs at least 3 training and 3 held-out pairs, got " +
                    std::to_string(n_pairs) + " pairs");
  }
  PairSplit s;
  for (int64_t i = 0; i < n_pairs; ++i) {
    (i < n_pairs - n_holdout ? s.train : s.holdout).push_back(static_cast<int64_t>(order[i]));
  }
  return s;
}

std::string TrainResult::Summary() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "%d Adam steps, kept step %d; Pearson(cos, label) train %.4f -> %.4f, held-out "
                "%.4f -> %.4f",
                steps, best_step, start_train, train, start_holdout, holdout);
  return buf;
}

TrainResult TrainAscent(const PairObjective& objective, const std::vector<double>& theta0,
                        const PairSplit& split, const TrainOptions& options) {
  TrainResult r;
  const size_t p = theta0.size();
  std::vector<double> theta = theta0, grad, m(p, 0.0), v(p, 0.0);
  r.theta = theta0;
  r.start_holdout = r.holdout = objective(theta, split.holdout, nullptr);
  constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  int since_best = 0;
  for (int step = 1; step <= options.max_steps; ++step) {
    const double train = objective(theta, split.train, &grad);
    if (step == 1) r.start_train = r.train = train;
    for (size_t i = 0; i < p; ++i) {  // ascent: maximise the correlation
      m[i] = kBeta1 * m[i] + (1 - kBeta1) * grad[i];
      v[i] = kBeta2 * v[i] + (1 - kBeta2) * grad[i] * grad[i];
      const double mh = m[i] / (1 - std::pow(kBeta1, step));
      const double vh = v[i] / (1 - std::pow(kBeta2, step));
      theta[i] += options.learning_rate * mh / (std::sqrt(vh) + kEps);
    }
    r.steps = step;
    const double held = objective(theta, split.holdout, nullptr);
    if (!std::isfinite(held)) throw NumericError("training diverged (non-finite correlation)");
    if (held > r.holdout) {
      r.holdout = held;
      r.theta = theta;
      r.best_step = step;
      since_best = 0;
    } else if (++since_best >= options.patience) {
      break;
    }
  }
  r.train = objective(r.theta, split.train, nullptr);
  return r;
}

}  // namespace rwkv_embed::methods
