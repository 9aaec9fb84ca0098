#include "methods/layer_fusion.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace rwkv_embed::methods {
namespace {

std::vector<double> Softmax(std::span<const double> theta) {
  double mx = theta[0];
  for (double t : theta) mx = std::max(mx, t);
  std::vector<double> w(theta.size());
  double z = 0;
  for (size_t i = 0; i < theta.size(); ++i) z += w[i] = std::exp(theta[i] - mx);
  for (double& x : w) x /= z;
  return w;
}

// Unit vector of `v` as doubles (zero stays zero).
std::vector<double> Unit(const float* v, int64_t d) {
  std::vector<double> u(v, v + d);
  double s = 0;
  for (double x : u) s += x * x;
  if (s > 0) {
    for (double& x : u) x /= std::sqrt(s);
  }
  return u;
}

}  // namespace

FusionKind ParseFusionKind(std::string_view name) {
  if (name == "mean") return FusionKind::kMean;
  if (name == "concat") return FusionKind::kConcat;
  if (name == "learned") return FusionKind::kLearned;
  throw UsageError("unknown layer fusion '" + std::string(name) +
                   "' (expected mean, concat or learned)");
}

std::string_view FusionKindName(FusionKind kind) {
  switch (kind) {
    case FusionKind::kMean:
      return "mean";
    case FusionKind::kConcat:
      return "concat";
    case FusionKind::kLearned:
      return "learned";
  }
  return "?";
}

FusionPairs BuildFusionPairs(const EmbedResult& embedded,
                             const std::vector<std::pair<int, int>>& pairs,
                             const std::vector<double>& labels) {
  FusionPairs f;
  const int64_t L = static_cast<int64_t>(embedded.embeddings.size());
  const int64_t n = embedded.embeddings.empty() ? 0 : embedded.embeddings[0].rows();
  f.layers = L;
  f.labels = labels;
  std::vector<std::vector<double>> unit(n * L);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t l = 0; l < L; ++l) {
      unit[i * L + l] = Unit(embedded.embeddings[l].Row(i), embedded.embeddings[l].cols());
    }
  }
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t k = 0; k < a.size(); ++k) s += a[k] * b[k];
    return s;
  };
  const int64_t np = static_cast<int64_t>(pairs.size());
  f.gab.resize(np * L * L);
  f.gaa.resize(np * L * L);
  f.gbb.resize(np * L * L);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t p = 0; p < np; ++p) {
    const int64_t a = pairs[p].first, b = pairs[p].second;
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t m = 0; m < L; ++m) {
        f.gab[(p * L + l) * L + m] = dot(unit[a * L + l], unit[b * L + m]);
        f.gaa[(p * L + l) * L + m] = dot(unit[a * L + l], unit[a * L + m]);
        f.gbb[(p * L + l) * L + m] = dot(unit[b * L + l], unit[b * L + m]);
      }
    }
  }
  return f;
}

double FusionObjective(const FusionPairs& data, std::span<const double> theta,
                       std::span<const int64_t> rows, std::vector<double>* grad) {
  const int64_t L = data.layers;
  const std::vector<double> w = Softmax(theta);
  const size_t n = rows.size();
  std::vector<double> cos(n), y(n), dcos_dw(grad ? n * L : 0, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const int64_t p = rows[i];
    y[i] = data.labels[p];
    const double* gab = &data.gab[p * L * L];
    const double* gaa = &data.gaa[p * L * L];
    const double* gbb = &data.gbb[p * L * L];
    std::vector<double> dn(L, 0.0), da(L, 0.0), db(L, 0.0);
    double N = 0, A = 0, B = 0;
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t m = 0; m < L; ++m) {
        N += w[l] * w[m] * gab[l * L + m];
        A += w[l] * w[m] * gaa[l * L + m];
        B += w[l] * w[m] * gbb[l * L + m];
        dn[l] += (gab[l * L + m] + gab[m * L + l]) * w[m];
        da[l] += 2 * gaa[l * L + m] * w[m];
        db[l] += 2 * gbb[l * L + m] * w[m];
      }
    }
    if (A <= 0 || B <= 0) continue;  // an empty sentence: cosine 0, no gradient
    const double s = std::sqrt(A * B);
    cos[i] = N / s;
    if (grad) {
      for (int64_t l = 0; l < L; ++l) {
        dcos_dw[i * L + l] = dn[l] / s - cos[i] / 2 * (da[l] / A + db[l] / B);
      }
    }
  }
  std::vector<double> dr_dcos;
  const double r = PearsonWithGradient(cos, y, grad ? &dr_dcos : nullptr);
  if (grad) {
    std::vector<double> dw(L, 0.0);
    for (size_t i = 0; i < n; ++i) {
      for (int64_t l = 0; l < L; ++l) dw[l] += dr_dcos[i] * dcos_dw[i * L + l];
    }
    // Softmax: d/dtheta_j = w_j (dw_j - sum_k w_k dw_k).
    double wdw = 0;
    for (int64_t l = 0; l < L; ++l) wdw += w[l] * dw[l];
    grad->assign(L, 0.0);
    for (int64_t l = 0; l < L; ++l) (*grad)[l] = w[l] * (dw[l] - wdw);
  }
  return r;
}

LayerFusionEmbedder::LayerFusionEmbedder(std::shared_ptr<Embedder> inner, FusionKind kind,
                                         std::vector<int> layers, TrainOptions train)
    : inner_(std::move(inner)), kind_(kind), layers_(std::move(layers)), train_(train) {
  if (layers_.empty()) layers_ = inner_->Layers();
  if (layers_.size() < 2) throw UsageError("layer fusion needs at least 2 layers");
  weights_.assign(layers_.size(), 1.0 / static_cast<double>(layers_.size()));
}

std::string LayerFusionEmbedder::Name() const {
  return inner_->Name() + "+fusion-" + std::string(FusionKindName(kind_));
}

std::vector<int> LayerFusionEmbedder::FusedLayers() const { return layers_; }

std::string LayerFusionEmbedder::Description() const {
  std::string d = inner_->Description() + "; fusion (" + std::string(FusionKindName(kind_)) +
                  ") of the L2-normalised layers";
  for (size_t i = 0; i < layers_.size(); ++i) {
    char w[48];
    std::snprintf(w, sizeof(w), "%s%d%s", i ? ", " : " ", layers_[i], "");
    d += w;
    if (kind_ == FusionKind::kLearned && trained_) {
      std::snprintf(w, sizeof(w), " (w %.3f)", weights_[i]);
      d += w;
    }
  }
  return d;
}

int64_t LayerFusionEmbedder::Dim() const {
  return kind_ == FusionKind::kConcat ? inner_->Dim() * static_cast<int64_t>(layers_.size())
                                      : inner_->Dim();
}

std::vector<LayerInfo> LayerFusionEmbedder::DescribeLayers() const {
  std::string label = "fusion-" + std::string(FusionKindName(kind_)) + " of layers ";
  for (size_t i = 0; i < layers_.size(); ++i) label += (i ? "," : "") + std::to_string(layers_[i]);
  return {{0, label, std::nullopt, "a fusion of several layers"}};
}

void LayerFusionEmbedder::Fit(const FitData& data, const EmbedRequest& request) {
  EmbedRequest inner_request = request;
  inner_request.layers = layers_;
  inner_request.normalization = Normalization::kNone;
  const std::string inner_fit = FitIfNeeded(*inner_, data, inner_request);
  if (kind_ != FusionKind::kLearned) {
    fitted_on_ = inner_fit;
    return;
  }
  const EmbedResult r = inner_->Embed(data.sentences, inner_request);
  const FusionPairs pairs = BuildFusionPairs(r, data.pairs, data.labels);
  const PairSplit split = SplitPairs(static_cast<int64_t>(data.pairs.size()), train_);
  const TrainResult t =
      TrainAscent([&](std::span<const double> theta, std::span<const int64_t> rows,
                      std::vector<double>* g) { return FusionObjective(pairs, theta, rows, g); },
                  std::vector<double>(layers_.size(), 0.0), split, train_);
  double mx = t.theta[0], z = 0;
  for (double th : t.theta) mx = std::max(mx, th);
  for (size_t i = 0; i < layers_.size(); ++i) z += weights_[i] = std::exp(t.theta[i] - mx);
  for (double& w : weights_) w /= z;
  trained_ = true;
  fitted_on_ = (inner_fit.empty() ? "" : inner_fit + "; ") + "layer weights trained on " +
               data.source + " (" + std::to_string(split.train.size()) + " pairs, " +
               std::to_string(split.holdout.size()) + " held out, seed " +
               std::to_string(train_.seed) + "): " + t.Summary();
}

EmbedResult LayerFusionEmbedder::Embed(std::span<const std::string> sentences,
                                       const EmbedRequest& request) {
  if (!(request.layers.empty() || (request.layers.size() == 1 && request.layers[0] == 0))) {
    throw UsageError(Name() + " has one layer, 0 (the fusion)");
  }
  if (kind_ == FusionKind::kLearned && !trained_) throw UsageError(Name() + ": Embed before Fit");
  EmbedRequest inner_request = request;
  inner_request.layers = layers_;
  inner_request.normalization = Normalization::kNone;
  EmbedResult r = inner_->Embed(sentences, inner_request);
  const int64_t n = static_cast<int64_t>(sentences.size());
  const int64_t d = inner_->Dim();
  const int64_t L = static_cast<int64_t>(layers_.size());
  Matrix fused(n, Dim());
  for (int64_t i = 0; i < n; ++i) {
    if (r.empty[i]) continue;
    float* out = fused.Row(i);
    for (int64_t l = 0; l < L; ++l) {
      const std::vector<double> u = Unit(r.embeddings[l].Row(i), d);
      for (int64_t c = 0; c < d; ++c) {
        if (kind_ == FusionKind::kConcat) {
          out[l * d + c] = static_cast<float>(u[c]);
        } else {
          out[c] += static_cast<float>(weights_[l] * u[c]);
        }
      }
    }
    if (request.normalization == Normalization::kL2) NormalizeL2(out, fused.cols());
  }
  EmbedResult f;
  f.layers = {0};
  f.embeddings.push_back(std::move(fused));
  f.empty = std::move(r.empty);
  f.tokens = r.tokens;
  return f;
}

}  // namespace rwkv_embed::methods
