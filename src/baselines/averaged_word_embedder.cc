#include "baselines/averaged_word_embedder.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace rwkv_embed::baselines {

AveragedWordEmbedder::AveragedWordEmbedder(std::shared_ptr<const WordVectors> vectors,
                                           AveragedWordOptions options)
    : WordVectorEmbedder(std::move(vectors), "AveragedWordEmbedder"),
      options_(std::move(options)) {}

std::string AveragedWordEmbedder::Description() const {
  return "averaged word vectors from " + DescribeWordVectors(*vectors_) + "; tokenizer " +
         std::string(WordTokenizerName(options_.tokenizer)) + ", lowercase " +
         (options_.lowercase ? "yes (ASCII)" : "no") +
         ", out-of-vocabulary words as zero vectors counted in the mean";
}

EmbedResult AveragedWordEmbedder::Embed(std::span<const std::string> sentences,
                                        const EmbedRequest& request) {
  CheckSingleLayerRequest(request, Name());
  if (request.pooling != Pooling::kMean && request.pooling != Pooling::kMax) {
    throw UsageError("embedder '" + Name() + "' supports pooling mean or max, not '" +
                     std::string(PoolingName(request.pooling)) + "'");
  }
  const int64_t n = static_cast<int64_t>(sentences.size());
  const int64_t dim = vectors_->dim();
  EmbedResult result;
  result.layers = {0};
  result.embeddings.emplace_back(n, dim);  // zero-initialised
  result.empty.assign(n, 0);
  Matrix& out = result.embeddings[0];
  stats_ = OovStats{};
  stats_.sentences = n;

  std::vector<std::string> tokens;
  std::vector<double> acc(dim);
  for (int64_t i = 0; i < n; ++i) {
    TokenizeWords(sentences[i], options_.tokenizer, options_.lowercase, &tokens);
    float* row = out.Row(i);
    int64_t known = 0;
    if (request.pooling == Pooling::kMean) {
      // Sum in double: the mean must not depend on word order.
      std::fill(acc.begin(), acc.end(), 0.0);
      for (const std::string& token : tokens) {
        const float* v = vectors_->Find(token);
        if (v == nullptr) continue;
        ++known;
        for (int64_t c = 0; c < dim; ++c) acc[c] += v[c];
      }
      if (known > 0) {
        const double inv_count = 1.0 / static_cast<double>(tokens.size());  // OOV counted
        for (int64_t c = 0; c < dim; ++c) row[c] = static_cast<float>(acc[c] * inv_count);
      }
    } else {  // kMax over known words only
      for (const std::string& token : tokens) {
        const float* v = vectors_->Find(token);
        if (v == nullptr) continue;
        if (known++ == 0) {
          std::copy(v, v + dim, row);
        } else {
          for (int64_t c = 0; c < dim; ++c) row[c] = std::max(row[c], v[c]);
        }
      }
    }
    stats_.total_tokens += static_cast<int64_t>(tokens.size());
    stats_.oov_tokens += static_cast<int64_t>(tokens.size()) - known;
    if (known == 0) {
      result.empty[i] = 1;
      ++stats_.empty_sentences;
    } else if (request.normalization == Normalization::kL2) {
      NormalizeL2(row, dim);
    }
  }
  result.tokens = stats_.total_tokens;
  return result;
}

}  // namespace rwkv_embed::baselines
