// Post-processing of sentence embeddings, fitted on the fitting split and applied to any layer of
// any embedder (a decorator):
//   center  x - mu
//   whiten  W (x - mu), W = Lambda^-1/2 U^T from the covariance's eigendecomposition (PCA
//           whitening): the fitted rows get identity covariance (directions of zero variance
//           map to 0);
//   abttD   all-but-the-top (Mu & Viswanath 2018, "All-but-the-Top: Simple and Effective
//           Postprocessing for Word Representations"): remove the mean and the projections on the
//           top D principal directions; D defaults to round(dim / 100), at least 1, as the paper
//           advises;
//   pcaK    the coordinates of x - mu on the top K principal directions (a reduction, e.g. for
//           the 10^5-dimensional WKV state).
// mu, U, Lambda: of the fitting rows' layer vectors (empty sentences left out), per layer, before
// any normalisation; the request's normalisation applies after the transform.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/matrix.h"
#include "methods/fitted_embedder.h"

namespace rwkv_embed::methods {

enum class PostKind { kCenter, kWhiten, kAbtt, kPca };

struct PostSpec {
  PostKind kind = PostKind::kCenter;
  int64_t k = 0;  // abtt: directions removed (0 = round(dim / 100), >= 1); pca: output dims
};
// "center" | "whiten" | "abtt" | "abtt<D>" | "pca<K>"; UsageError otherwise.
PostSpec ParsePostSpec(std::string_view name);
std::string PostSpecName(const PostSpec& spec);

// A fitted affine map of one layer's vectors.
struct FittedTransform {
  std::vector<float> mean;  // [d_in]
  Matrix projection;        // whiten/pca: [out_dim, d_in], y = P (x - mean)
  Matrix removed;           // abtt: [D, d_in] unit directions, y = xc - sum (u . xc) u
  int64_t out_dim = 0;
  std::vector<double> variances;  // of the principal directions used (whiten, abtt, pca)

  void Apply(const float* x, float* y) const;
};

// Fits `spec` on the rows (each `d` floats). DataError for fewer than 2 rows; UsageError for
// whitening more dims than rows allow (reduce first with pcaK) or pcaK with K > d.
FittedTransform FitTransform(const PostSpec& spec, const std::vector<const float*>& rows,
                             int64_t d);

class PostProcessedEmbedder : public FittedEmbedder {
 public:
  PostProcessedEmbedder(std::shared_ptr<Embedder> inner, PostSpec spec);

  std::string Name() const override;
  std::string Description() const override;
  int64_t Dim() const override;
  std::vector<int> Layers() const override { return inner_->Layers(); }
  std::vector<LayerInfo> DescribeLayers() const override { return inner_->DescribeLayers(); }
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;
  void Fit(const FitData& data, const EmbedRequest& request) override;
  std::string FittedOn() const override { return fitted_on_; }

  const FittedTransform& transform(int layer) const;

 private:
  std::shared_ptr<Embedder> inner_;
  PostSpec spec_;
  std::map<int, FittedTransform> transforms_;
  Pooling pooling_ = Pooling::kMean;
  std::string fitted_on_;
};

}  // namespace rwkv_embed::methods
