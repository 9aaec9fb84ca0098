// Layer fusion: one sentence vector from several layers of an embedder. Each layer's vector is
// first L2-normalised (layers' norms differ by orders of magnitude in RWKV; without this the
// largest layer would be the fusion), then
//   fusion-mean     (1/L) sum_l u_l,
//   fusion-concat   [u_1, ..., u_L] (cosine = mean of the layers' cosines),
//   fusion-learned  sum_l softmax(theta)_l u_l, theta trained on the fitting split's pairs
//                   (training.h: maximise Pearson(cos, label), Adam from theta = 0 = fusion-mean,
//                   seeded held-out early stopping).
// The fused vector is this embedder's one layer, numbered 0 (its label names the layers fused).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "methods/fitted_embedder.h"
#include "methods/training.h"

namespace rwkv_embed::methods {

enum class FusionKind { kMean, kConcat, kLearned };
FusionKind ParseFusionKind(std::string_view name);  // mean | concat | learned
std::string_view FusionKindName(FusionKind kind);

// Per pair of the fitting split, the layer-by-layer dot products of the two sentences'
// normalised layer vectors: gab[p][l][m] = u_a,l . u_b,m, gaa, gbb likewise.
struct FusionPairs {
  int64_t layers = 0;
  std::vector<double> gab, gaa, gbb;  // [pairs, L, L]
  std::vector<double> labels;
};
// `embedded`: the fused layers of the fitting sentences (raw; normalised here).
FusionPairs BuildFusionPairs(const EmbedResult& embedded,
                             const std::vector<std::pair<int, int>>& pairs,
                             const std::vector<double>& labels);
// Pearson(cos(fused_a, fused_b), label) over `rows` with w = softmax(theta); grad = d/dtheta.
double FusionObjective(const FusionPairs& data, std::span<const double> theta,
                       std::span<const int64_t> rows, std::vector<double>* grad);

class LayerFusionEmbedder : public FittedEmbedder {
 public:
  // `layers`: the inner embedder's layers to fuse (empty = all of them).
  LayerFusionEmbedder(std::shared_ptr<Embedder> inner, FusionKind kind, std::vector<int> layers,
                      TrainOptions train = {});

  std::string Name() const override;
  std::string Description() const override;
  int64_t Dim() const override;
  std::vector<int> Layers() const override { return {0}; }
  std::vector<LayerInfo> DescribeLayers() const override;
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;
  // fusion-learned trains its weights; mean and concat only fit an inner fitted embedder.
  void Fit(const FitData& data, const EmbedRequest& request) override;
  std::string FittedOn() const override { return fitted_on_; }

  const std::vector<double>& weights() const { return weights_; }  // per fused layer

 private:
  std::vector<int> FusedLayers() const;

  std::shared_ptr<Embedder> inner_;
  FusionKind kind_;
  std::vector<int> layers_;
  TrainOptions train_;
  std::vector<double> weights_;
  bool trained_ = false;
  std::string fitted_on_;
};

}  // namespace rwkv_embed::methods
