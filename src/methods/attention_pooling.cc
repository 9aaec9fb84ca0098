#include "methods/attention_pooling.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace rwkv_embed::methods {
namespace {

float InvNorm(const float* h, int64_t dim) {
  double s = 0;
  for (int64_t c = 0; c < dim; ++c) s += static_cast<double>(h[c]) * h[c];
  return s > 0 ? static_cast<float>(1.0 / std::sqrt(s)) : 0.0f;
}

double Score(std::span<const double> q, const float* h, float inv_norm, int64_t dim) {
  double s = 0;
  for (int64_t c = 0; c < dim; ++c) s += q[c] * h[c];
  return s * inv_norm;
}

// The token cache of every layer in `layers` for `ids`, from one pass.
std::vector<TokenCache> CacheTokens(RwkvEmbedder& model,
                                    const std::vector<std::vector<int32_t>>& ids,
                                    const std::vector<int>& layers) {
  const int64_t dim = model.Dim();
  std::vector<TokenCache> caches(layers.size());
  for (TokenCache& c : caches) {
    c.dim = dim;
    for (const std::vector<int32_t>& s : ids) {
      c.offsets.push_back(c.offsets.back() + static_cast<int64_t>(s.size()));
    }
    c.rows.resize(c.offsets.back() * dim);
    c.inv_norms.resize(c.offsets.back());
  }
  TokenEmbedOptions o;
  o.token_tap = [&](int64_t sentence, int layer, int64_t first, const float* rows, int64_t T) {
    const size_t l = std::find(layers.begin(), layers.end(), layer) - layers.begin();
    TokenCache& c = caches[l];
    const int64_t at = c.offsets[sentence] + first;
    std::copy(rows, rows + T * dim, c.rows.begin() + at * dim);
    for (int64_t t = 0; t < T; ++t) c.inv_norms[at + t] = InvNorm(rows + t * dim, dim);
  };
  EmbedRequest request;
  request.layers = layers;
  model.EmbedTokens(ids, request, o);
  return caches;
}

}  // namespace

std::vector<double> AttentionWeights(std::span<const double> q, const float* rows,
                                     const float* inv_norms, int64_t n, int64_t dim) {
  std::vector<double> a(n);
  double mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t)
    mx = std::max(mx, a[t] = Score(q, rows + t * dim, inv_norms[t], dim));
  double z = 0;
  for (double& x : a) z += x = std::exp(x - mx);
  for (double& x : a) x /= z;
  return a;
}

double AttentionObjective(const TokenCache& cache, const std::vector<std::pair<int, int>>& pairs,
                          const std::vector<double>& labels, std::span<const double> q,
                          std::span<const int64_t> rows, std::vector<double>* grad) {
  const int64_t d = cache.dim;
  const int64_t n_sent = static_cast<int64_t>(cache.offsets.size()) - 1;
  // Forward: every sentence's pooled vector.
  std::vector<double> e(n_sent * d, 0.0);
  std::vector<std::vector<double>> alpha(n_sent);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n_sent; ++i) {
    const int64_t T = cache.offsets[i + 1] - cache.offsets[i];
    if (T == 0) continue;
    const float* h = &cache.rows[cache.offsets[i] * d];
    alpha[i] = AttentionWeights(q, h, &cache.inv_norms[cache.offsets[i]], T, d);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t c = 0; c < d; ++c) e[i * d + c] += alpha[i][t] * h[t * d + c];
    }
  }
  const size_t n = rows.size();
  std::vector<double> cos(n), y(n);
  for (size_t k = 0; k < n; ++k) {
    const auto [a, b] = pairs[rows[k]];
    y[k] = labels[rows[k]];
    cos[k] = CosineWithGradient(&e[a * d], &e[b * d], d, 0.0, nullptr, nullptr);
  }
  std::vector<double> dr_dcos;
  const double r = PearsonWithGradient(cos, y, grad ? &dr_dcos : nullptr);
  if (grad == nullptr) return r;
  // Backward: dr/de per sentence, then through the softmax to q.
  std::vector<double> ge(n_sent * d, 0.0);
  for (size_t k = 0; k < n; ++k) {
    const auto [a, b] = pairs[rows[k]];
    CosineWithGradient(&e[a * d], &e[b * d], d, dr_dcos[k], &ge[a * d], &ge[b * d]);
  }
  grad->assign(d, 0.0);
  std::vector<double>& g = *grad;
  for (int64_t i = 0; i < n_sent; ++i) {
    const int64_t T = cache.offsets[i + 1] - cache.offsets[i];
    if (T == 0) continue;
    const float* h = &cache.rows[cache.offsets[i] * d];
    const float* inv = &cache.inv_norms[cache.offsets[i]];
    const double* gi = &ge[i * d];
    double ge_e = 0;
    for (int64_t c = 0; c < d; ++c) ge_e += gi[c] * e[i * d + c];
    for (int64_t t = 0; t < T; ++t) {
      // dr/ds_t = alpha_t (g . h_t - g . e); ds_t/dq = h_t / |h_t|
      double gh = 0;
      for (int64_t c = 0; c < d; ++c) gh += gi[c] * h[t * d + c];
      const double ds = alpha[i][t] * (gh - ge_e) * inv[t];
      if (ds == 0) continue;
      for (int64_t c = 0; c < d; ++c) g[c] += ds * h[t * d + c];
    }
  }
  return r;
}

AttentionPoolEmbedder::AttentionPoolEmbedder(std::shared_ptr<RwkvEmbedder> model,
                                             TrainOptions train)
    : model_(std::move(model)), train_(train) {}

std::string AttentionPoolEmbedder::Description() const {
  return model_->Description() +
         "; attention pooling with a learned query per layer (s_t = q . h_t / |h_t|, softmax "
         "over the tokens, q from 0 = mean pooling)";
}

const std::vector<double>& AttentionPoolEmbedder::query(int layer) const {
  const auto it = queries_.find(layer);
  if (it == queries_.end()) {
    throw UsageError("attention: no query for layer " + std::to_string(layer) + " (not fitted)");
  }
  return it->second;
}

void AttentionPoolEmbedder::Fit(const FitData& data, const EmbedRequest& request) {
  const std::vector<int> layers = request.layers.empty() ? Layers() : request.layers;
  const std::vector<std::vector<int32_t>> ids = model_->Tokenize(data.sentences);
  int64_t tokens = 0;
  for (const auto& s : ids) tokens += static_cast<int64_t>(s.size());
  const int64_t per_layer = std::max<int64_t>(1, tokens * Dim() * 4);
  const size_t group = static_cast<size_t>(std::max<int64_t>(1, kAttentionCacheBytes / per_layer));
  const PairSplit split = SplitPairs(static_cast<int64_t>(data.pairs.size()), train_);
  std::string summary;
  for (size_t first = 0; first < layers.size(); first += group) {
    const std::vector<int> some(layers.begin() + first,
                                layers.begin() + std::min(layers.size(), first + group));
    const std::vector<TokenCache> caches = CacheTokens(*model_, ids, some);
    for (size_t l = 0; l < some.size(); ++l) {
      const TrainResult t = TrainAscent(
          [&](std::span<const double> q, std::span<const int64_t> rows, std::vector<double>* g) {
            return AttentionObjective(caches[l], data.pairs, data.labels, q, rows, g);
          },
          std::vector<double>(Dim(), 0.0), split, train_);
      queries_[some[l]] = t.theta;
      summary += (summary.empty() ? "" : "; ") + std::string("layer ") + std::to_string(some[l]) +
                 ": " + t.Summary();
    }
  }
  fitted_on_ = "queries trained on " + data.source + " (" + std::to_string(split.train.size()) +
               " pairs, " + std::to_string(split.holdout.size()) + " held out, seed " +
               std::to_string(train_.seed) + "): " + summary;
}

EmbedResult AttentionPoolEmbedder::Embed(std::span<const std::string> sentences,
                                         const EmbedRequest& request) {
  const std::vector<int> layers = request.layers.empty() ? Layers() : request.layers;
  for (int l : layers) query(l);  // every layer trained, before any work
  const int64_t n = static_cast<int64_t>(sentences.size()), d = Dim();
  const int64_t L = static_cast<int64_t>(layers.size());
  // Online softmax per (sentence, layer): running max, normaliser and weighted sum.
  std::vector<double> mx(n * L, -INFINITY), z(n * L, 0.0), acc(n * L * d, 0.0);
  TokenEmbedOptions o;
  o.token_tap = [&](int64_t i, int layer, int64_t /*first*/, const float* rows, int64_t T) {
    const int64_t l = std::find(layers.begin(), layers.end(), layer) - layers.begin();
    const std::vector<double>& q = queries_.at(layer);
    const int64_t k = i * L + l;
    double* a = &acc[k * d];
    for (int64_t t = 0; t < T; ++t) {
      const float* h = rows + t * d;
      const double s = Score(q, h, InvNorm(h, d), d);
      if (s > mx[k]) {
        const double f = std::exp(mx[k] - s);  // 0 on the first token
        z[k] *= f;
        for (int64_t c = 0; c < d; ++c) a[c] *= f;
        mx[k] = s;
      }
      const double w = std::exp(s - mx[k]);
      z[k] += w;
      for (int64_t c = 0; c < d; ++c) a[c] += w * h[c];
    }
  };
  EmbedRequest tap = request;
  tap.layers = layers;
  EmbedResult r = model_->EmbedTokens(model_->Tokenize(sentences), tap, o);
  for (int64_t l = 0; l < L; ++l) {
    Matrix& m = r.embeddings[l];
    for (int64_t i = 0; i < n; ++i) {
      if (r.empty[i]) continue;
      const int64_t k = i * L + l;
      for (int64_t c = 0; c < d; ++c) m.Row(i)[c] = static_cast<float>(acc[k * d + c] / z[k]);
      if (request.normalization == Normalization::kL2) NormalizeL2(m.Row(i), d);
    }
  }
  CheckEmbeddingsFinite(r, Name());
  return r;
}

std::vector<TokenWeight> AttentionPoolEmbedder::TokenWeights(const std::string& sentence,
                                                             int layer) {
  const std::vector<double>& q = query(layer);
  const std::vector<std::vector<int32_t>> ids = model_->Tokenize({&sentence, 1});
  if (ids[0].empty()) return {};
  const TokenCache c = std::move(CacheTokens(*model_, ids, {layer})[0]);
  const std::vector<double> a =
      AttentionWeights(q, c.rows.data(), c.inv_norms.data(), ids[0].size(), c.dim);
  std::vector<TokenWeight> out;
  for (size_t t = 0; t < ids[0].size(); ++t) {
    out.push_back({model_->tokenizer().Decode({&ids[0][t], 1}), a[t]});
  }
  return out;
}

}  // namespace rwkv_embed::methods
