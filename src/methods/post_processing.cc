#include "methods/post_processing.h"

#include <charconv>
#include <cmath>

#include "core/error.h"
#include "methods/linalg.h"

namespace rwkv_embed::methods {
namespace {

int64_t ParseCount(std::string_view digits, std::string_view name) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size() || v < 1) {
    throw UsageError("post-processing '" + std::string(name) +
                     "': expected a positive count after the name (e.g. abtt2, pca64)");
  }
  return v;
}

// Rows of the result's layer `l` that hold an embedding (empty sentences are zero vectors).
std::vector<const float*> NonEmptyRows(const EmbedResult& r, size_t l) {
  std::vector<const float*> rows;
  for (int64_t i = 0; i < r.embeddings[l].rows(); ++i) {
    if (!r.empty[i]) rows.push_back(r.embeddings[l].Row(i));
  }
  return rows;
}

}  // namespace

PostSpec ParsePostSpec(std::string_view name) {
  if (name == "center") return {PostKind::kCenter, 0};
  if (name == "whiten") return {PostKind::kWhiten, 0};
  if (name == "abtt") return {PostKind::kAbtt, 0};
  if (name.starts_with("abtt")) return {PostKind::kAbtt, ParseCount(name.substr(4), name)};
  if (name.starts_with("pca")) return {PostKind::kPca, ParseCount(name.substr(3), name)};
  throw UsageError("unknown post-processing '" + std::string(name) +
                   "' (expected center, whiten, abtt, abtt<D> or pca<K>)");
}

std::string PostSpecName(const PostSpec& spec) {
  switch (spec.kind) {
    case PostKind::kCenter:
      return "center";
    case PostKind::kWhiten:
      return "whiten";
    case PostKind::kAbtt:
      return spec.k ? "abtt" + std::to_string(spec.k) : "abtt";
    case PostKind::kPca:
      return "pca" + std::to_string(spec.k);
  }
  return "?";
}

void FittedTransform::Apply(const float* x, float* y) const {
  const int64_t d = static_cast<int64_t>(mean.size());
  std::vector<double> xc(d);
  for (int64_t c = 0; c < d; ++c) xc[c] = static_cast<double>(x[c]) - mean[c];
  if (projection.rows() > 0) {
    for (int64_t o = 0; o < out_dim; ++o) {
      const float* p = projection.Row(o);
      double s = 0;
      for (int64_t c = 0; c < d; ++c) s += p[c] * xc[c];
      y[o] = static_cast<float>(s);
    }
    return;
  }
  for (int64_t r = 0; r < removed.rows(); ++r) {
    const float* u = removed.Row(r);
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += u[c] * xc[c];
    for (int64_t c = 0; c < d; ++c) xc[c] -= s * u[c];
  }
  for (int64_t c = 0; c < d; ++c) y[c] = static_cast<float>(xc[c]);
}

FittedTransform FitTransform(const PostSpec& spec, const std::vector<const float*>& rows,
                             int64_t d) {
  const int64_t n = static_cast<int64_t>(rows.size());
  FittedTransform t;
  int64_t k = 0;
  switch (spec.kind) {
    case PostKind::kCenter:
      break;
    case PostKind::kWhiten:
      if (d >= n) {
        throw UsageError("whiten: " + std::to_string(d) + "-dimensional vectors need more than " +
                         std::to_string(d) + " fitting sentences, got " + std::to_string(n) +
                         " (reduce first, e.g. +pca64+whiten)");
      }
      k = d;
      break;
    case PostKind::kAbtt:
      k = spec.k ? spec.k : std::max<int64_t>(1, std::llround(static_cast<double>(d) / 100.0));
      if (k >= d)
        throw UsageError("abtt" + std::to_string(k) +
                         ": needs fewer than dim = " + std::to_string(d) + " directions");
      break;
    case PostKind::kPca:
      k = spec.k;
      if (k > d)
        throw UsageError("pca" + std::to_string(k) + ": more dims than the input's " +
                         std::to_string(d));
      break;
  }
  if (spec.kind == PostKind::kCenter) {
    if (n < 1) throw DataError("center: no non-empty fitting sentence");
    std::vector<double> mean(d, 0.0);
    for (const float* r : rows) {
      for (int64_t c = 0; c < d; ++c) mean[c] += r[c];
    }
    for (double m : mean) t.mean.push_back(static_cast<float>(m / static_cast<double>(n)));
    t.out_dim = d;
    return t;
  }
  const PrincipalComponents pc = FitPrincipalComponents(rows, d, k);
  t.mean.assign(pc.mean.begin(), pc.mean.end());
  const int64_t found = static_cast<int64_t>(pc.variances.size());
  switch (spec.kind) {
    case PostKind::kCenter:
      break;
    case PostKind::kAbtt:
      t.out_dim = d;
      t.removed = Matrix(std::min(k, found), d);
      for (int64_t r = 0; r < t.removed.rows(); ++r) {
        for (int64_t c = 0; c < d; ++c)
          t.removed.Row(r)[c] = static_cast<float>(pc.directions[r * d + c]);
      }
      t.variances.assign(pc.variances.begin(), pc.variances.begin() + t.removed.rows());
      break;
    case PostKind::kWhiten:
    case PostKind::kPca: {
      t.out_dim = k;
      t.projection = Matrix(k, d);  // rows past the rank stay 0
      const bool whiten = spec.kind == PostKind::kWhiten;
      for (int64_t r = 0; r < std::min(k, found); ++r) {
        const double scale = whiten ? 1.0 / std::sqrt(pc.variances[r]) : 1.0;
        for (int64_t c = 0; c < d; ++c) {
          t.projection.Row(r)[c] = static_cast<float>(pc.directions[r * d + c] * scale);
        }
      }
      t.variances.assign(pc.variances.begin(), pc.variances.begin() + std::min(k, found));
      break;
    }
  }
  return t;
}

PostProcessedEmbedder::PostProcessedEmbedder(std::shared_ptr<Embedder> inner, PostSpec spec)
    : inner_(std::move(inner)), spec_(spec) {}

std::string PostProcessedEmbedder::Name() const {
  return inner_->Name() + "+" + PostSpecName(spec_);
}

std::string PostProcessedEmbedder::Description() const {
  return inner_->Description() + "; then " + PostSpecName(spec_) +
         (fitted_on_.empty() ? " (not fitted)" : " fitted per layer on the fitting split");
}

int64_t PostProcessedEmbedder::Dim() const {
  if (!transforms_.empty()) return transforms_.begin()->second.out_dim;
  return spec_.kind == PostKind::kPca ? spec_.k : inner_->Dim();
}

const FittedTransform& PostProcessedEmbedder::transform(int layer) const {
  const auto it = transforms_.find(layer);
  if (it == transforms_.end()) {
    throw UsageError(Name() + ": layer " + std::to_string(layer) + " was not fitted");
  }
  return it->second;
}

void PostProcessedEmbedder::Fit(const FitData& data, const EmbedRequest& request) {
  const std::string inner_fit = FitIfNeeded(*inner_, data, request);
  EmbedRequest raw = request;
  raw.normalization = Normalization::kNone;
  const EmbedResult r = inner_->Embed(data.sentences, raw);
  transforms_.clear();
  for (size_t l = 0; l < r.layers.size(); ++l) {
    transforms_[r.layers[l]] = FitTransform(spec_, NonEmptyRows(r, l), r.embeddings[l].cols());
  }
  pooling_ = request.pooling;
  fitted_on_ = (inner_fit.empty() ? "" : inner_fit + "; ") + PostSpecName(spec_) + " (dim " +
               std::to_string(Dim()) + ") fitted on " + data.source;
}

EmbedResult PostProcessedEmbedder::Embed(std::span<const std::string> sentences,
                                         const EmbedRequest& request) {
  if (transforms_.empty()) throw UsageError(Name() + ": Embed before Fit");
  if (request.pooling != pooling_) {
    throw UsageError(Name() + ": fitted with pooling " + std::string(PoolingName(pooling_)) +
                     ", asked for " + std::string(PoolingName(request.pooling)));
  }
  EmbedRequest raw = request;
  raw.normalization = Normalization::kNone;
  if (raw.layers.empty()) {
    for (const auto& [layer, t] : transforms_) raw.layers.push_back(layer);
  }
  for (int layer : raw.layers) transform(layer);  // every layer fitted, before any work
  EmbedResult r = inner_->Embed(sentences, raw);
  for (size_t l = 0; l < r.layers.size(); ++l) {
    const FittedTransform& t = transform(r.layers[l]);
    Matrix out(r.embeddings[l].rows(), t.out_dim);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < out.rows(); ++i) {
      if (r.empty[i]) continue;  // stays a zero vector, counted as empty
      t.Apply(r.embeddings[l].Row(i), out.Row(i));
      if (request.normalization == Normalization::kL2) NormalizeL2(out.Row(i), t.out_dim);
    }
    r.embeddings[l] = std::move(out);
  }
  return r;
}

}  // namespace rwkv_embed::methods
