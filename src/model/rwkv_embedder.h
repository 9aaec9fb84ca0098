// Sentence embeddings from any layer of an RWKV model (any SequenceModel: RWKV-6, RWKV-7) through
// the common Embedder interface: sentences are tokenized, packed into batches by a token budget,
// run once through the model with taps on every requested layer, and pooled per sentence as each
// layer arrives.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/embedder.h"
#include "model/sequence_model.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_search.h"

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

// What EmbedTokens adds to Embed, for embedders built on this one (EmbeddingRWKV pools the
// hidden states at its EOS positions and continues texts from a saved prefix state).
struct TokenEmbedOptions {
  // Per sentence, the token positions whose hidden states are pooled (strictly ascending, below
  // the sentence's length); an empty list, or an empty outer vector, pools every token.
  std::vector<std::vector<int64_t>> pool_positions;
  // Every sentence starts from this state instead of zeros (empty = zeros). Batches then hold at
  // most kMaxSequencesWithState sentences, since each needs its own copy of the state.
  SequenceState initial_state;
  // Sees the raw (unpooled) hidden states of every requested layer, piece by piece: `rows` are
  // positions first_position .. first_position + T - 1 of `sentence`, [T, C] with row stride C,
  // valid only during the call. A sentence's pieces arrive in order (a long sentence spans
  // batches); calls come from one thread. For analyses over token trajectories and for caching
  // token states (trained poolings), at no cost when unset.
  std::function<void(int64_t sentence, int layer, int64_t first_position, const float* rows,
                     int64_t T)>
      token_tap;
};
inline constexpr int64_t kMaxSequencesWithState = 16;

// Which tokenizer Load builds: the RWKV World vocabulary, or byte-level ids (id = UTF-8 byte).
enum class TokenizerKind { kWorld, kBytes };
// "world" | "bytes" -> the kind. Throws UsageError naming the value and the valid names.
TokenizerKind ParseTokenizerKind(std::string_view name);
std::string_view TokenizerKindName(TokenizerKind kind);

class RwkvEmbedder : public Embedder {
 public:
  RwkvEmbedder(std::shared_ptr<const SequenceModel> model,
               std::shared_ptr<const Tokenizer> tokenizer, RwkvEmbedderOptions options = {});

  // Loads the model at `model_dir` (a folder or checkpoint file; the architecture is recognised
  // by LoadModel) and the tokenizer: World from `vocab` (default: FindWorldVocab, i.e. beside
  // the model, then $RWKV_EMBED_VOCAB, then the installed copy), or byte-level.
  static std::unique_ptr<RwkvEmbedder> Load(const std::filesystem::path& model_dir,
                                            const std::filesystem::path& vocab = {},
                                            RwkvEmbedderOptions options = {},
                                            const LoadOptions& load = {},
                                            TokenizerKind tokenizer = TokenizerKind::kWorld);

  std::string Name() const override { return "rwkv"; }
  std::string Description() const override;
  int64_t Dim() const override { return model_->hidden_size(); }
  std::vector<int> Layers() const override;
  // Our index, "block k"-style label and the model's HF hidden_states index (LayerNumbering).
  std::vector<LayerInfo> DescribeLayers() const override;
  // Throws FormatError for invalid UTF-8 (naming the sentence index), UsageError for bad layers,
  // and NonFiniteEmbeddingError as soon as a batch yields a NaN/Inf in a requested layer (naming
  // the sentence, that layer, the first non-finite layer and the first non-finite weight).
  // Empty sentences get zero rows and are flagged in EmbedResult::empty.
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;
  // The token ids Embed feeds for each sentence (FormatError naming the sentence index for invalid
  // UTF-8), for callers that go on with EmbedTokens.
  std::vector<std::vector<int32_t>> Tokenize(std::span<const std::string> sentences) const;
  // Embed from token ids (ids[i] = sentence i, exactly as fed), with the batching, carried
  // states and NaN/Inf checks of Embed, plus TokenEmbedOptions. When `final_states` is given it
  // receives each sentence's state after its last token (the initial state for a sentence without
  // tokens). UsageError for a bad position list or an initial state of the wrong shape.
  EmbedResult EmbedTokens(std::vector<std::vector<int32_t>> ids, const EmbedRequest& request,
                          const TokenEmbedOptions& token_options = {},
                          std::vector<SequenceState>* final_states = nullptr);

  const SequenceModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // Layer identity: our numbering and the model's Hugging Face hidden_states indices.
  LayerNumbering layer_numbering() const { return model_->layer_numbering(); }
  RwkvEmbedderOptions& options() { return options_; }

 private:
  class Run;

  std::shared_ptr<const SequenceModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  RwkvEmbedderOptions options_;
};

}  // namespace rwkv_embed
