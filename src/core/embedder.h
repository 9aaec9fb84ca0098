// The seam between embedding methods (RWKV layers, averaged word vectors, ...) and everything that
// consumes embeddings (evaluator, CLI, server). The evaluator never knows which method it holds.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/matrix.h"
#include "pooling/pooling.h"

namespace rwkv_embed {

struct EmbedRequest {
  // Layers to return, in the embedder's own numbering (RWKV: 0 = after pre_ln, k = block k,
  // L+1 = after ln_out). Empty means every layer the embedder has.
  std::vector<int> layers;
  Pooling pooling = Pooling::kMean;
  Normalization normalization = Normalization::kNone;
};

struct EmbedResult {
  std::vector<int> layers;         // layers[i] is what embeddings[i] holds
  std::vector<Matrix> embeddings;  // one [n_sentences, dim] matrix per layer
  // Sentences with nothing to embed (no token / no known word); their rows are zero vectors and
  // their cosine similarity is undefined: consumers must count and report them.
  std::vector<uint8_t> empty;
  int64_t tokens = 0;  // tokens (or words) processed
};

// A produced embedding holds NaN or Inf: an error, never a result. Embedders throw it as soon as
// they find one (RwkvEmbedder: in the first bad batch), naming the sentence, the layer and what
// they know of the cause; callers that know where the sentence came from rename it.
class NonFiniteEmbeddingError : public NumericError {
 public:
  // what() = "non-finite embedding (NaN or Inf) for " + sentence_label + detail.
  NonFiniteEmbeddingError(int64_t sentence, const std::string& sentence_label, std::string detail);
  int64_t sentence() const { return sentence_; }  // index in the Embed call
  const std::string& detail() const { return detail_; }
  // The same error with the sentence named the caller's way, e.g.
  // Renamed(4101, "sentence 4101 (line 4102 of in.txt)").
  NonFiniteEmbeddingError Renamed(int64_t sentence, const std::string& sentence_label) const;

 private:
  int64_t sentence_;
  std::string detail_;
};

// Throws NonFiniteEmbeddingError for the first sentence of `result` with a NaN or Inf in any
// layer (naming that layer and `embedder_name`). One pass over the embeddings: cheap enough to run
// on every result.
void CheckEmbeddingsFinite(const EmbedResult& result, const std::string& embedder_name);

// Identity of one layer an embedder can return: what reports, JSON and plots call it. Layer
// identity belongs to the embedder (only it knows its architecture), never to its consumers.
struct LayerInfo {
  int layer = 0;      // the embedder's own index (EmbedRequest::layers)
  std::string label;  // "after pre_ln", "block 3", "after ln_out"; a baseline: its name
  // Hugging Face output_hidden_states index of this layer, where HF's tuple holds it.
  std::optional<int> hf_index;
  std::string no_hf_reason;  // why hf_index is empty (shown as the JSON null reason)
};

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::string Name() const = 0;         // short method name: "rwkv", "glove", "sif"
  virtual std::string Description() const = 0;  // what exactly: files, dims, options
  virtual int64_t Dim() const = 0;
  virtual std::vector<int> Layers() const = 0;  // every layer it can return
  // One entry per Layers() element, in the same order. The default: "layer N", no HF index.
  virtual std::vector<LayerInfo> DescribeLayers() const;
  virtual EmbedResult Embed(std::span<const std::string> sentences,
                            const EmbedRequest& request) = 0;
};

}  // namespace rwkv_embed
