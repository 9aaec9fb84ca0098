// EmbeddingRWKV sentence embeddings (docs/design.md#embeddingrwkv) through the common Embedder
// interface: each text (with its instruction, when one is set) is tokenized, laid out with EOS
// 65535 as the chosen mode says, run through the RWKV-7 backbone by RwkvEmbedder's packed batches
// (no padding: a text's vector never depends on the texts batched with it), the ln_out outputs at
// the EOS positions are averaged, and the task head turns that mean into the embedding.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/embedder.h"
#include "model/embedding_rwkv/embedding_rwkv.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed {

struct EmbeddingRwkvOptions {
  EmbeddingRwkvHead head = EmbeddingRwkvHead::kRetr;
  EosMode eos_mode = EosMode::kEval;
  // Instruction description: every text becomes "Instruct: {instruction}\nQuery: {text}"
  // (ApplyInstruction). Empty = texts as given.
  std::string instruction;
  // Every text continues from this state (after a prefix: PrefixState / LoadSequenceState)
  // instead of zeros. Empty = zeros.
  SequenceState prefix_state;
};

class EmbeddingRwkvEmbedder : public Embedder {
 public:
  EmbeddingRwkvEmbedder(std::shared_ptr<RwkvEmbedder> backbone,
                        std::shared_ptr<const EmbeddingRwkvHeads> heads,
                        EmbeddingRwkvOptions options = {});

  // Loads an EmbeddingRWKV checkpoint (`rwkv.*` backbone and `head.*_head` tensors; ShapeError
  // naming a missing head tensor) and the World vocabulary (`vocab`, or FindWorldVocab).
  static std::unique_ptr<EmbeddingRwkvEmbedder> Load(const std::filesystem::path& model_path,
                                                     const std::filesystem::path& vocab = {},
                                                     RwkvEmbedderOptions backbone_options = {},
                                                     EmbeddingRwkvOptions options = {},
                                                     const LoadOptions& load = {});

  std::string Name() const override { return "embedding-rwkv"; }
  std::string Description() const override;
  int64_t Dim() const override { return backbone_->Dim(); }
  // One output: the head's embedding, numbered 0.
  std::vector<int> Layers() const override { return {0}; }
  // request.layers: empty or {0}; pooling: mean (over the EOS positions; UsageError otherwise);
  // normalization: none or l2. Throws FormatError for invalid UTF-8 and
  // NonFiniteEmbeddingError for a NaN/Inf in the backbone or the head output.
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;

  // The ids fed for `text` (instruction applied, EOS layout of the mode) and its EOS positions.
  EosSequence Prepare(std::string_view text) const;
  // The embeddings of texts given as prepared sequences; `initial_state` as
  // EmbeddingRwkvOptions::prefix_state.
  EmbedResult EmbedPrepared(std::vector<EosSequence> sequences, Normalization normalization,
                            const SequenceState& initial_state);
  // The backbone state after the tokens of `prefix` (no EOS, no instruction), continuing from
  // options().prefix_state; the zero state for an empty prefix. FormatError for invalid UTF-8.
  SequenceState PrefixState(std::string_view prefix, int64_t* tokens = nullptr);

  RwkvEmbedder& backbone() { return *backbone_; }
  const EmbeddingRwkvHeads& heads() const { return *heads_; }
  EmbeddingRwkvOptions& options() { return options_; }

 private:
  std::shared_ptr<RwkvEmbedder> backbone_;
  std::shared_ptr<const EmbeddingRwkvHeads> heads_;
  EmbeddingRwkvOptions options_;
};

}  // namespace rwkv_embed
