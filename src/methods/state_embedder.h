// State embeddings: the recurrent state after a sentence's last token as its vector. RWKV reads a
// sentence into a fixed-size state; block k's state is that block's "layer" here (layer k =
// block k, 1-based, as our hidden-state numbering). Parts, each flattened in the architecture's
// own layout (RWKV-6 [H, S, S] key x value, RWKV-7 value x key):
//   state-wkv    the WKV matrix of every head: H * N * N = C * N floats per block;
//   state-shift  the two token-shift states (time-mix input then channel-mix input): 2 C floats;
//   state-all    wkv, then time shift, then channel shift.
// The WKV state is large (131,072 floats per block for Finch-1B6): reduce it with a projection
// fitted on the train split (`state-wkv+pca64`, post_processing.h), and request few blocks.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "methods/fitted_embedder.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::methods {

enum class StatePart { kWkv, kShift, kAll };
// "wkv" | "shift" | "all"; UsageError otherwise.
StatePart ParseStatePart(std::string_view name);
std::string_view StatePartName(StatePart part);

class StateEmbedder : public Embedder {
 public:
  StateEmbedder(std::shared_ptr<RwkvEmbedder> model, StatePart part);

  std::string Name() const override;
  std::string Description() const override;
  int64_t Dim() const override;
  std::vector<int> Layers() const override;  // 1 .. L
  std::vector<LayerInfo> DescribeLayers() const override;
  // request.pooling is not used (the state is not pooled); normalisation applies.
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;

  // The vector of one block's state (`out` holds Dim() floats).
  void Flatten(const BlockState& state, float* out) const;

 private:
  std::shared_ptr<RwkvEmbedder> model_;
  StatePart part_;
};

}  // namespace rwkv_embed::methods
