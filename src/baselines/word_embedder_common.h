// Pieces shared by the word-vector embedders (AveragedWordEmbedder, SifEmbedder).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "baselines/word_tokenizer.h"
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

}  // namespace rwkv_embed::baselines
