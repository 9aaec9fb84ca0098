#include "baselines/word_embedder_common.h"

#include "core/error.h"

namespace rwkv_embed::baselines {

void CheckSingleLayerRequest(const EmbedRequest& request, std::string_view embedder_name) {
  for (const int layer : request.layers) {
    if (layer != 0) {
      throw UsageError("embedder '" + std::string(embedder_name) +
                       "' has only layer 0, got layer " + std::to_string(layer));
    }
  }
}

WordVectorEmbedder::WordVectorEmbedder(std::shared_ptr<const WordVectors> vectors,
                                       std::string_view kind)
    : vectors_(std::move(vectors)) {
  if (vectors_ == nullptr) throw UsageError(std::string(kind) + ": no word vectors given");
}

}  // namespace rwkv_embed::baselines
