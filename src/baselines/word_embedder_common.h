// Pieces shared by the word-vector embedders (AveragedWordEmbedder, SifEmbedder).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "baselines/word_tokenizer.h"
#include "baselines/word_vectors.h"
#include "core/embedder.h"

namespace rwkv_embed::baselines {

// How the words of the last Embed call met the vocabulary; callers report these.
struct OovStats {
  int64_t sentences = 0;
  int64_t total_tokens = 0;     // words produced by the tokenizer
  int64_t oov_tokens = 0;       // of which not in the vector table (zero vectors)
  int64_t empty_sentences = 0;  // sentences without a single known word (zero embedding)
  double OovRate() const {
    return total_tokens == 0 ? 0.0 : static_cast<double>(oov_tokens) / total_tokens;
  }
};

// Word-vector embedders have exactly one layer, number 0. Throws UsageError for any other layer.
void CheckSingleLayerRequest(const EmbedRequest& request, std::string_view embedder_name);

// The Embedder members every word-vector embedder shares: its vectors' width, one layer (0), and
// the counts of the last Embed call.
class WordVectorEmbedder : public Embedder {
 public:
  int64_t Dim() const override { return vectors_->dim(); }
  std::vector<int> Layers() const override { return {0}; }
  std::vector<LayerInfo> DescribeLayers() const override {
    return {
        {0, Name(), std::nullopt, "not a layered model: word-vector baselines have one layer (0)"}};
  }
  const OovStats& last_stats() const { return stats_; }  // of the last Embed call

 protected:
  // UsageError "`kind`: no word vectors given" for null vectors.
  WordVectorEmbedder(std::shared_ptr<const WordVectors> vectors, std::string_view kind);

  std::shared_ptr<const WordVectors> vectors_;
  OovStats stats_;
};

}  // namespace rwkv_embed::baselines
