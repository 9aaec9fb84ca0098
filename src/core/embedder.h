// The seam between embedding methods (RWKV layers, averaged word vectors, ...) and everything that
// consumes embeddings (evaluator, CLI, server). The evaluator never knows which method it holds.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

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

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::string Name() const = 0;         // short method name: "rwkv", "glove", "sif"
  virtual std::string Description() const = 0;  // what exactly: files, dims, options
  virtual int64_t Dim() const = 0;
  virtual std::vector<int> Layers() const = 0;  // every layer it can return
  virtual EmbedResult Embed(std::span<const std::string> sentences,
                            const EmbedRequest& request) = 0;
};

}  // namespace rwkv_embed
