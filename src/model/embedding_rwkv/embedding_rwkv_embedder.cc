#include "model/embedding_rwkv/embedding_rwkv_embedder.h"

#include <utility>

#include "core/error.h"
#include "core/utf8.h"

namespace rwkv_embed {

EmbeddingRwkvEmbedder::EmbeddingRwkvEmbedder(std::shared_ptr<RwkvEmbedder> backbone,
                                             std::shared_ptr<const EmbeddingRwkvHeads> heads,
                                             EmbeddingRwkvOptions options)
    : backbone_(std::move(backbone)), heads_(std::move(heads)), options_(std::move(options)) {
  if (heads_->hidden_size() != backbone_->Dim()) {
    throw ShapeError("EmbeddingRWKV heads of size " + std::to_string(heads_->hidden_size()) +
                     " on a backbone of hidden size " + std::to_string(backbone_->Dim()));
  }
}

std::unique_ptr<EmbeddingRwkvEmbedder> EmbeddingRwkvEmbedder::Load(
    const std::filesystem::path& model_path, const std::filesystem::path& vocab,
    RwkvEmbedderOptions backbone_options, EmbeddingRwkvOptions options, const LoadOptions& load) {
  std::shared_ptr<RwkvEmbedder> backbone =
      RwkvEmbedder::Load(model_path, vocab, std::move(backbone_options), load);
  if (backbone->model().Architecture() != "rwkv7") {
    throw ShapeError(
        model_path.string() + ": an EmbeddingRWKV checkpoint has an RWKV-7 backbone (" +
        "rwkv.blocks.N.att.*), this one is " + std::string(backbone->model().Architecture()));
  }
  std::shared_ptr<const EmbeddingRwkvHeads> heads =
      EmbeddingRwkvHeads::Load(model_path, backbone->Dim(), load);
  return std::make_unique<EmbeddingRwkvEmbedder>(std::move(backbone), std::move(heads),
                                                 std::move(options));
}

std::string EmbeddingRwkvEmbedder::Description() const {
  std::string d = "EmbeddingRWKV (" + std::string(EmbeddingRwkvHeadName(options_.head)) +
                  " head, " + std::string(EosModeName(options_.eos_mode)) + " EOS mode";
  if (!options_.instruction.empty()) d += ", instruction \"" + options_.instruction + "\"";
  if (!options_.prefix_state.empty()) d += ", continuing from a prefix state";
  return d + ") on " + backbone_->Description();
}

EosSequence EmbeddingRwkvEmbedder::Prepare(std::string_view text) const {
  const std::vector<int32_t> tokens =
      backbone_->tokenizer().Encode(ApplyInstruction(options_.instruction, text));
  return BuildEosSequence(tokens, options_.eos_mode);
}

EmbedResult EmbeddingRwkvEmbedder::Embed(std::span<const std::string> sentences,
                                         const EmbedRequest& request) {
  if (!request.layers.empty() && request.layers != std::vector<int>{0}) {
    throw UsageError("EmbeddingRWKV has one output, layer 0 (the task head's embedding)");
  }
  if (request.pooling != Pooling::kMean) {
    throw UsageError("EmbeddingRWKV pools by the mean over its EOS positions; pooling '" +
                     std::string(PoolingName(request.pooling)) + "' is for backbone layers");
  }
  std::vector<EosSequence> sequences;
  sequences.reserve(sentences.size());
  for (size_t i = 0; i < sentences.size(); ++i) {
    ValidateUtf8(sentences[i], "sentence " + std::to_string(i));
    sequences.push_back(Prepare(sentences[i]));
  }
  return EmbedPrepared(std::move(sequences), request.normalization, options_.prefix_state);
}

EmbedResult EmbeddingRwkvEmbedder::EmbedPrepared(std::vector<EosSequence> sequences,
                                                 Normalization normalization,
                                                 const SequenceState& initial_state) {
  const int64_t n = static_cast<int64_t>(sequences.size()), C = Dim();
  std::vector<std::vector<int32_t>> ids(n);
  TokenEmbedOptions token_options;
  token_options.pool_positions.resize(n);
  token_options.initial_state = initial_state;
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = std::move(sequences[i].ids);
    token_options.pool_positions[i] = std::move(sequences[i].eos_positions);
  }
  EmbedRequest backbone_request;
  backbone_request.layers = {static_cast<int>(backbone_->model().num_blocks()) + 1};  // ln_out
  EmbedResult pooled = backbone_->EmbedTokens(std::move(ids), backbone_request, token_options);

  EmbedResult result;
  result.layers = {0};
  result.embeddings.emplace_back(n, C);
  result.empty.assign(n, 0);
  result.tokens = pooled.tokens;
  heads_->Apply(options_.head, pooled.embeddings[0].data(), n, result.embeddings[0].data());
  if (normalization == Normalization::kL2) {
    for (int64_t i = 0; i < n; ++i) NormalizeL2(result.embeddings[0].Row(i), C);
  }
  CheckEmbeddingsFinite(
      result, Name() + " (" + std::string(EmbeddingRwkvHeadName(options_.head)) + " head)");
  return result;
}

SequenceState EmbeddingRwkvEmbedder::PrefixState(std::string_view prefix, int64_t* tokens) {
  ValidateUtf8(prefix, "prefix");
  std::vector<std::vector<int32_t>> ids(1, backbone_->tokenizer().Encode(prefix));
  if (tokens != nullptr) *tokens = static_cast<int64_t>(ids[0].size());
  TokenEmbedOptions token_options;
  token_options.initial_state = options_.prefix_state;
  EmbedRequest request;
  request.layers = {static_cast<int>(backbone_->model().num_blocks()) + 1};
  std::vector<SequenceState> states;
  backbone_->EmbedTokens(std::move(ids), request, token_options, &states);
  return std::move(states[0]);
}

}  // namespace rwkv_embed
