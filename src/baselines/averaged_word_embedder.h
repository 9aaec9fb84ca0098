// Averaged word vectors: the study's GloVe baseline ("Exploring RWKV for Sentence Embeddings",
// §3.2 and appendix: whitespace tokens, out-of-vocabulary words as zero vectors, average over
// words), as in SentEval's examples/bow.py.
//
// Mean pooling divides the sum of the known words' vectors by the number of ALL tokens, i.e. an
// OOV word contributes a zero vector to the average, exactly as the study did. This only rescales
// each sentence vector by known/total, so cosine similarity is the same as averaging over known
// words only (dot products and Euclidean distances are not). Max pooling takes the per-dimension
// maximum over the known words' vectors (a zero vector for OOV would clip negative maxima at 0).
// A sentence without a single known word gets a zero vector and EmbedResult::empty[i] = 1.
// L2 normalisation, if requested, is applied after pooling.
#pragma once

#include <memory>
#include <string>

#include "baselines/word_embedder_common.h"
#include "baselines/word_tokenizer.h"
#include "baselines/word_vectors.h"
#include "core/embedder.h"

namespace rwkv_embed::baselines {

struct AveragedWordOptions {
  std::string name = "glove";  // Name(): lets one run compare several vector files
  WordTokenizer tokenizer = WordTokenizer::kWhitespace;
  // GloVe 6B's vocabulary is lower-cased, so without this every capitalised word is OOV.
  bool lowercase = true;
};

class AveragedWordEmbedder : public WordVectorEmbedder {
 public:
  explicit AveragedWordEmbedder(std::shared_ptr<const WordVectors> vectors,
                                AveragedWordOptions options = {});

  std::string Name() const override { return options_.name; }
  std::string Description() const override;
  // request.layers: empty or {0}; pooling: mean or max (else UsageError).
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;

  // Counts of the last Embed call.
  int64_t oov_tokens() const { return stats_.oov_tokens; }
  int64_t total_tokens() const { return stats_.total_tokens; }

  const AveragedWordOptions& options() const { return options_; }

 private:
  AveragedWordOptions options_;
};

}  // namespace rwkv_embed::baselines
