#include "model/rwkv_embedder.h"

#include "core/error.h"
#include "core/utf8.h"
#include "model/load_model.h"
#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {

RwkvEmbedder::RwkvEmbedder(std::shared_ptr<const SequenceModel> model,
                           std::shared_ptr<const Tokenizer> tokenizer, RwkvEmbedderOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  if (options_.batch_tokens < 1) throw UsageError("batch_tokens must be >= 1");
}

std::unique_ptr<RwkvEmbedder> RwkvEmbedder::Load(const std::filesystem::path& model_dir,
                                                 const std::filesystem::path& vocab,
                                                 RwkvEmbedderOptions options,
                                                 const LoadOptions& load, TokenizerKind kind) {
  if (!std::filesystem::exists(model_dir)) {
    throw IoError("model not found: " + model_dir.string() +
                  " (a model folder or a checkpoint file)");
  }
  std::shared_ptr<const Tokenizer> tokenizer;
  std::string vocab_name = "the byte-level tokenizer";
  if (kind == TokenizerKind::kBytes) {
    tokenizer = std::make_shared<ByteTokenizer>();
  } else {
    // Default: the vocabulary beside the weights (in the folder, or next to a checkpoint file).
    const auto folder =
        std::filesystem::is_directory(model_dir) ? model_dir : model_dir.parent_path();
    const auto vocab_path = vocab.empty() ? folder / kWorldVocabFile : vocab;
    if (!std::filesystem::exists(vocab_path)) {
      throw IoError("vocabulary not found: " + vocab_path.string() +
                    " (HF RWKV folders ship rwkv_vocab_v20230424.txt; pass --vocab FILE, or "
                    "--tokenizer bytes for a byte-level model)");
    }
    tokenizer = std::make_shared<WorldTokenizer>(WorldTokenizer::FromVocabFile(vocab_path));
    vocab_name = "vocabulary " + vocab_path.string();
  }
  std::shared_ptr<const SequenceModel> model = LoadModel(model_dir, load);
  if (tokenizer->vocab_size() > model->vocab_size()) {
    throw ShapeError(vocab_name + " has " + std::to_string(tokenizer->vocab_size()) +
                     " ids but the model embeds only " + std::to_string(model->vocab_size()));
  }
  return std::make_unique<RwkvEmbedder>(std::move(model), std::move(tokenizer), std::move(options));
}

std::string RwkvEmbedder::Description() const { return model_->Describe(); }

std::vector<int> RwkvEmbedder::Layers() const {
  std::vector<int> layers;
  for (int l = 0; l < model_->num_layer_taps(); ++l) layers.push_back(l);
  return layers;
}

EmbedResult RwkvEmbedder::Embed(std::span<const std::string> sentences,
                                const EmbedRequest& request) {
  const int64_t n = static_cast<int64_t>(sentences.size()), C = Dim();
  EmbedResult result;
  result.layers = request.layers.empty() ? Layers() : request.layers;
  std::vector<int> slot(model_->num_layer_taps(), -1);  // layer -> index in result
  for (size_t i = 0; i < result.layers.size(); ++i) {
    const int l = result.layers[i];
    if (l < 0 || l >= model_->num_layer_taps()) {
      throw UsageError("layer " + std::to_string(l) + " out of range 0.." +
                       std::to_string(model_->num_layer_taps() - 1));
    }
    if (slot[l] != -1) throw UsageError("layer " + std::to_string(l) + " requested twice");
    slot[l] = static_cast<int>(i);
  }
  for (size_t i = 0; i < result.layers.size(); ++i) result.embeddings.emplace_back(n, C);
  result.empty.assign(n, 0);

  // Tokenize everything up front: token counts decide the batches.
  std::vector<std::vector<int32_t>> ids(n);
  for (int64_t i = 0; i < n; ++i) {
    ValidateUtf8(sentences[i], "sentence " + std::to_string(i));
    tokenizer_->EncodeAppend(sentences[i], ids[i]);
    if (ids[i].empty()) result.empty[i] = 1;
    result.tokens += static_cast<int64_t>(ids[i].size());
  }

  ForwardOptions fwd;
  fwd.layers = result.layers;
  fwd.precision = options_.precision;
  fwd.overrides = options_.overrides;
  int64_t next = 0, done_tokens = 0;
  std::vector<int64_t> members;  // sentence index of each sequence in the batch
  while (next < n) {
    TokenBatch batch;
    members.clear();
    while (next < n &&
           (batch.num_tokens() == 0 ||
            batch.num_tokens() + static_cast<int64_t>(ids[next].size()) <= options_.batch_tokens)) {
      if (!ids[next].empty()) {
        batch.Add(ids[next]);
        members.push_back(next);
      }
      ++next;
    }
    if (batch.num_sequences() == 0) continue;
    model_->Forward(batch, fwd, [&](int layer, const Matrix& h) {
      Matrix& out = result.embeddings[slot[layer]];
      const int64_t n_seq = batch.num_sequences();
#pragma omp parallel for schedule(static) if (n_seq * C > (1 << 15))
      for (int64_t s = 0; s < n_seq; ++s) {
        float* row = out.Row(members[s]);
        Pool(request.pooling, h.Row(batch.offsets[s]), batch.length(s), C, C, row);
        if (request.normalization == Normalization::kL2) NormalizeL2(row, C);
      }
    });
    done_tokens += batch.num_tokens();
    if (options_.progress) options_.progress(next, n, done_tokens);
  }
  return result;
}

}  // namespace rwkv_embed
