// Sentence embeddings from any RWKV-6 layer through the common Embedder interface: sentences are
// tokenized, packed into batches by a token budget, run once through the model with taps on every
// requested layer, and pooled per sentence as each layer arrives.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/embedder.h"
#include "model/rwkv6.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {

struct RwkvEmbedderOptions {
  // Tokens per forward pass. Sentences are packed end to end and every batch is filled to exactly
  // this many tokens: a sentence that does not fit continues in the next batch from its carried
  // recurrent state (bit-identical to one pass), so memory is bounded by this budget whatever
  // the input length. The forward pass needs about 44 C + 4 F bytes per batch token of scratch
  // (240 MB at 2048 tokens for Finch-1B6), which keeps peak memory within 1.15x the weight bytes.
  int64_t batch_tokens = 2048;
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kF32;
  std::vector<BlockOverride> overrides;  // ablations, one per block (or empty)
  // Called after each batch with (sentences done, total sentences, tokens done).
  std::function<void(int64_t, int64_t, int64_t)> progress;
};

class RwkvEmbedder : public Embedder {
 public:
  RwkvEmbedder(std::shared_ptr<const Rwkv6Model> model,
               std::shared_ptr<const WorldTokenizer> tokenizer, RwkvEmbedderOptions options = {});

  // Loads DIR (config.json, weights) and the vocabulary (default DIR/rwkv_vocab_v20230424.txt).
  static std::unique_ptr<RwkvEmbedder> Load(const std::filesystem::path& model_dir,
                                            const std::filesystem::path& vocab = {},
                                            RwkvEmbedderOptions options = {},
                                            const LoadOptions& load = {});

  std::string Name() const override { return "rwkv"; }
  std::string Description() const override;
  int64_t Dim() const override { return model_->config().hidden_size; }
  std::vector<int> Layers() const override;
  // Throws FormatError for invalid UTF-8 (naming the sentence index), UsageError for bad layers,
  // and NonFiniteEmbeddingError as soon as a batch yields a NaN/Inf in a requested layer (naming
  // the sentence, that layer, the first non-finite layer and the first non-finite weight).
  // Empty sentences get zero rows and are flagged in EmbedResult::empty.
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;

  const Rwkv6Model& model() const { return *model_; }
  const WorldTokenizer& tokenizer() const { return *tokenizer_; }
  RwkvEmbedderOptions& options() { return options_; }

 private:
  class Run;

  std::shared_ptr<const Rwkv6Model> model_;
  std::shared_ptr<const WorldTokenizer> tokenizer_;
  RwkvEmbedderOptions options_;
};

// The vocabulary file HF RWKV-6 model folders ship.
inline constexpr const char* kWorldVocabFile = "rwkv_vocab_v20230424.txt";

}  // namespace rwkv_embed
