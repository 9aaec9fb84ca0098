// Attention pooling with a learned query (the study's §6.3 proposal), per layer, backbone frozen:
//   s_t = q . h_t / |h_t|,  alpha = softmax_t(s),  e = sum_t alpha_t h_t.
// q starts at 0 (uniform weights: exactly mean pooling), so |q| is also the inverse temperature.
// q is trained on the fitting split's pairs (training.h: maximise Pearson(cos, label), Adam,
// seeded held-out early stopping) from token states cached once (RwkvEmbedder's token tap; the
// cache holds the fit split's tokens x C floats per layer, layers taken in groups that fit in
// kAttentionCacheBytes, one forward pass per group).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "methods/fitted_embedder.h"
#include "methods/training.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::methods {

inline constexpr int64_t kAttentionCacheBytes = int64_t{2} << 30;

// One layer's token states of a set of sentences: sentence i is rows [offsets[i], offsets[i+1]).
struct TokenCache {
  int64_t dim = 0;
  std::vector<int64_t> offsets = {0};
  std::vector<float> rows;
  std::vector<float> inv_norms;  // 1 / |h_t| (0 for a zero row)
};

// The attention weights of `n` token rows (row stride = dim) under query q.
std::vector<double> AttentionWeights(std::span<const double> q, const float* rows,
                                     const float* inv_norms, int64_t n, int64_t dim);

// Pearson(cos(e_a, e_b), label) over the pairs `rows` of (pairs, labels), with the gradient with
// respect to q (hand-written; tests compare it with finite differences).
double AttentionObjective(const TokenCache& cache, const std::vector<std::pair<int, int>>& pairs,
                          const std::vector<double>& labels, std::span<const double> q,
                          std::span<const int64_t> rows, std::vector<double>* grad);

struct TokenWeight {
  std::string token;  // the token's bytes
  double weight = 0;
};

class AttentionPoolEmbedder : public FittedEmbedder {
 public:
  AttentionPoolEmbedder(std::shared_ptr<RwkvEmbedder> model, TrainOptions train = {});

  std::string Name() const override { return "attention"; }
  std::string Description() const override;
  int64_t Dim() const override { return model_->Dim(); }
  std::vector<int> Layers() const override { return model_->Layers(); }
  std::vector<LayerInfo> DescribeLayers() const override { return model_->DescribeLayers(); }
  // Uses the trained query of each requested layer (request.pooling is not used).
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;
  void Fit(const FitData& data, const EmbedRequest& request) override;
  std::string FittedOn() const override { return fitted_on_; }

  // Sets a layer's query (tests; a query trained elsewhere).
  void SetQuery(int layer, std::vector<double> q) { queries_[layer] = std::move(q); }
  const std::vector<double>& query(int layer) const;
  // Each token of `sentence` with its attention weight at `layer`.
  std::vector<TokenWeight> TokenWeights(const std::string& sentence, int layer);

 private:
  std::shared_ptr<RwkvEmbedder> model_;
  TrainOptions train_;
  std::map<int, std::vector<double>> queries_;
  std::string fitted_on_;
};

}  // namespace rwkv_embed::methods
