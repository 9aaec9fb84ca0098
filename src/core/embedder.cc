#include "core/embedder.h"

#include <utility>

namespace rwkv_embed {

NonFiniteEmbeddingError::NonFiniteEmbeddingError(int64_t sentence,
                                                 const std::string& sentence_label,
                                                 std::string detail)
    : NumericError("non-finite embedding (NaN or Inf) for " + sentence_label + detail),
      sentence_(sentence),
      detail_(std::move(detail)) {}

NonFiniteEmbeddingError NonFiniteEmbeddingError::Renamed(int64_t sentence,
                                                         const std::string& sentence_label) const {
  return {sentence, sentence_label, detail_};
}

void CheckEmbeddingsFinite(const EmbedResult& result, const std::string& embedder_name) {
  int64_t first = -1;
  size_t layer = 0;
  for (size_t l = 0; l < result.embeddings.size(); ++l) {
    const Matrix& m = result.embeddings[l];
    const int64_t rows = first < 0 ? m.rows() : first;  // only earlier sentences can win
    const int64_t row = FirstNonFiniteRow(m.data(), rows, m.cols(), m.cols());
    if (row >= 0) {
      first = row;
      layer = l;
    }
  }
  if (first < 0) return;
  const std::string layer_name =
      layer < result.layers.size() ? std::to_string(result.layers[layer]) : "?";
  throw NonFiniteEmbeddingError(first, "sentence " + std::to_string(first),
                                ", layer " + layer_name + " of " + embedder_name);
}

std::vector<LayerInfo> Embedder::DescribeLayers() const {
  std::vector<LayerInfo> out;
  for (int layer : Layers()) {
    out.push_back({layer, "layer " + std::to_string(layer), std::nullopt,
                   "embedder '" + Name() + "' has no Hugging Face hidden_states numbering"});
  }
  return out;
}

}  // namespace rwkv_embed
