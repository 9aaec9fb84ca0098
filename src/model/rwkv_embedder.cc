#include "model/rwkv_embedder.h"

#include <algorithm>
#include <map>
#include <utility>

#include "core/error.h"
#include "core/utf8.h"
#include "model/load_model.h"
#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {

TokenizerKind ParseTokenizerKind(std::string_view name) {
  if (name == "world") return TokenizerKind::kWorld;
  if (name == "bytes") return TokenizerKind::kBytes;
  throw UsageError("unknown tokenizer '" + std::string(name) + "' (valid: world|bytes)");
}

std::string_view TokenizerKindName(TokenizerKind kind) {
  return kind == TokenizerKind::kBytes ? "bytes" : "world";
}

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
    const auto vocab_path = vocab.empty() ? FindWorldVocab(model_dir) : vocab;
    if (!std::filesystem::exists(vocab_path)) {
      throw IoError("vocabulary not found: " + vocab_path.string() +
                    " (the file given as --vocab; --tokenizer bytes for a byte-level model)");
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

std::vector<LayerInfo> RwkvEmbedder::DescribeLayers() const {
  const LayerNumbering numbering = model_->layer_numbering();
  std::vector<LayerInfo> out;
  for (int l : Layers()) {
    LayerInfo info{l, numbering.ShortLabel(l), std::nullopt, numbering.NoHfReason(l)};
    if (const int hf = numbering.HfIndexOf(l); hf >= 0) info.hf_index = hf;
    out.push_back(std::move(info));
  }
  return out;
}

namespace {

// Tokens ids[sentence][begin, end) of one sentence, as one sequence of a batch.
struct Piece {
  int64_t sentence = 0, begin = 0, end = 0;
};

// "layer 1 (block 1)": our numbering and what the layer is.
std::string LayerName(int layer, int num_blocks) {
  const std::string n = "layer " + std::to_string(layer);
  if (layer == 0) return n + " (embeddings after pre_ln)";
  if (layer == num_blocks + 1) return n + " (after ln_out)";
  return n + " (block " + std::to_string(layer) + ")";
}

// Cuts the token stream of all sentences, in order, into batches of exactly `budget` tokens (the
// last may be shorter). A sentence that does not fit in what is left of a batch continues in the
// next one, so memory is bounded by the budget whatever the input, and at most one sentence is
// carried from one batch to the next.
class Packer {
 public:
  // At most `max_pieces` pieces per batch.
  Packer(const std::vector<std::vector<int32_t>>& ids, int64_t budget, int64_t max_pieces)
      : ids_(ids), budget_(budget), max_pieces_(max_pieces) {}

  // The pieces of the next batch, in sentence order; empty when every token is packed.
  std::vector<Piece> Next() {
    std::vector<Piece> pieces;
    int64_t room = budget_;
    while (room > 0 && static_cast<int64_t>(pieces.size()) < max_pieces_ && SkipEmpty()) {
      const int64_t len = Length(next_);
      const int64_t take = std::min(room, len - pos_);
      pieces.push_back({next_, pos_, pos_ + take});
      room -= take;
      pos_ += take;
      if (pos_ == len) {
        ++next_;
        pos_ = 0;
      }
    }
    SkipEmpty();
    return pieces;
  }
  // Sentences whose every token has been packed.
  int64_t sentences_done() const { return next_; }
  int64_t Length(int64_t sentence) const { return static_cast<int64_t>(ids_[sentence].size()); }

 private:
  // Moves past sentences without tokens; whether any token is left.
  bool SkipEmpty() {
    while (next_ < static_cast<int64_t>(ids_.size()) && Length(next_) == 0) ++next_;
    return next_ < static_cast<int64_t>(ids_.size());
  }

  const std::vector<std::vector<int32_t>>& ids_;
  int64_t budget_, max_pieces_;
  int64_t next_ = 0, pos_ = 0;
};

}  // namespace

// One Embed call: runs the packed batches, pools each layer as it arrives (across batches for a
// sentence cut in pieces), and stops at the first batch that produces a NaN or Inf.
class RwkvEmbedder::Run {
 public:
  Run(const RwkvEmbedder& e, const EmbedRequest& request, EmbedResult& result,
      std::vector<std::vector<int32_t>> ids, const TokenEmbedOptions& token_options,
      std::vector<SequenceState>* final_states)
      : e_(e),
        request_(request),
        result_(result),
        ids_(std::move(ids)),
        token_options_(token_options),
        final_states_(final_states),
        packer_(ids_, e.options_.batch_tokens,
                token_options.initial_state.empty() ? ids_.size() + 1 : kMaxSequencesWithState),
        C_(e.Dim()) {
    slot_.assign(e.model_->num_layer_taps(), -1);
    for (size_t i = 0; i < result.layers.size(); ++i) slot_[result.layers[i]] = static_cast<int>(i);
    fwd_.layers = result.layers;
    fwd_.precision = e.options_.precision;
    fwd_.overrides = e.options_.overrides;
  }

  void All() {
    int64_t done_tokens = 0;
    for (auto pieces = packer_.Next(); !pieces.empty(); pieces = packer_.Next()) {
      ++batch_index_;
      done_tokens += Batch(pieces);
      if (e_.options_.progress) {
        e_.options_.progress(packer_.sentences_done(), static_cast<int64_t>(ids_.size()),
                             done_tokens);
      }
    }
  }

 private:
  bool Whole(const Piece& p) const { return p.begin == 0 && p.end == packer_.Length(p.sentence); }
  bool Ends(const Piece& p) const { return p.end == packer_.Length(p.sentence); }
  // The positions of `sentence` to pool; nullptr = every token.
  const std::vector<int64_t>* Selected(int64_t sentence) const {
    const auto& sel = token_options_.pool_positions;
    if (sel.empty() || sel[sentence].empty()) return nullptr;
    return &sel[sentence];
  }

  // Runs one batch; returns its token count.
  int64_t Batch(const std::vector<Piece>& pieces) {
    const int64_t n_seq = static_cast<int64_t>(pieces.size());
    TokenBatch batch;
    for (const Piece& p : pieces) {
      batch.Add(std::span(ids_[p.sentence]).subspan(p.begin, p.end - p.begin));
    }
    // Only the first piece can continue a sentence, and only the last can be cut.
    std::vector<SequenceState> init;
    if (pieces.front().begin > 0 || !token_options_.initial_state.empty()) {
      init.resize(n_seq);
      for (int64_t s = 0; s < n_seq; ++s) {
        if (pieces[s].begin == 0) init[s] = token_options_.initial_state;
      }
      if (pieces.front().begin > 0) init[0] = std::move(carried_);
    }
    const bool cut = !Ends(pieces.back());
    fwd_.state_sequences.clear();
    for (int64_t s = 0; s < n_seq; ++s) {
      if ((s == n_seq - 1 && cut) || (final_states_ != nullptr && Ends(pieces[s]))) {
        fwd_.state_sequences.push_back(s);
      }
    }
    fwd_.return_states = !fwd_.state_sequences.empty();
    std::vector<std::vector<PoolingAccumulator>*> acc(n_seq, nullptr);
    for (int64_t s = 0; s < n_seq; ++s) {
      if (!Whole(pieces[s]) || Selected(pieces[s].sentence)) {
        acc[s] = &Accumulators(pieces[s].sentence);
      }
    }

    std::vector<int> bad_layer(n_seq, -1);  // first requested layer with a NaN/Inf, per piece
    ForwardResult fr = e_.model_->Forward(
        batch, fwd_,
        [&](int layer, const Matrix& h) {
          const int k = slot_[layer];
          Matrix& out = result_.embeddings[k];
#pragma omp parallel for schedule(static) if (n_seq * C_ > (1 << 15))
          for (int64_t s = 0; s < n_seq; ++s) {
            const float* rows = h.Row(batch.offsets[s]);
            const int64_t T = batch.length(s);
            if (bad_layer[s] < 0 && FirstNonFiniteRow(rows, T, C_, C_) >= 0) bad_layer[s] = layer;
            float* row = out.Row(pieces[s].sentence);
            if (acc[s] == nullptr) {
              Pool(request_.pooling, rows, T, C_, C_, row);
            } else {
              AddPiece(pieces[s], rows, (*acc[s])[k]);
              if (!Ends(pieces[s])) continue;
              (*acc[s])[k].Finish(row);
            }
            if (request_.normalization == Normalization::kL2) NormalizeL2(row, C_);
            // Pooling itself can overflow (mean-sqrt-len of large values).
            if (bad_layer[s] < 0 && FirstNonFiniteRow(row, 1, C_, C_) >= 0) bad_layer[s] = layer;
          }
          if (token_options_.token_tap) {
            for (int64_t s = 0; s < n_seq; ++s) {
              token_options_.token_tap(pieces[s].sentence, layer, pieces[s].begin,
                                       h.Row(batch.offsets[s]), batch.length(s));
            }
          }
        },
        init);
    for (int64_t s = 0; s < n_seq; ++s) {
      if (bad_layer[s] >= 0) {
        Fail(pieces[s], init.empty() ? SequenceState{} : init[s], bad_layer[s]);
      }
    }
    for (int64_t s = 0; s < n_seq; ++s) {
      if (acc[s] != nullptr && Ends(pieces[s])) partial_.erase(pieces[s].sentence);
      if (final_states_ != nullptr && Ends(pieces[s])) {
        (*final_states_)[pieces[s].sentence] = std::move(fr.states[s]);
      }
    }
    if (cut) carried_ = std::move(fr.states.back());
    return batch.num_tokens();
  }

  // Adds the rows of piece `p` ([p.end - p.begin, C]) that are to be pooled.
  void AddPiece(const Piece& p, const float* rows, PoolingAccumulator& acc) const {
    const std::vector<int64_t>* sel = Selected(p.sentence);
    if (sel == nullptr) {
      acc.Add(rows, p.end - p.begin, C_);
      return;
    }
    for (auto it = std::lower_bound(sel->begin(), sel->end(), p.begin);
         it != sel->end() && *it < p.end; ++it) {
      acc.Add(rows + (*it - p.begin) * C_, 1, C_);
    }
  }

  // The pooling accumulators (one per requested layer) of a sentence cut in pieces.
  std::vector<PoolingAccumulator>& Accumulators(int64_t sentence) {
    auto [it, inserted] = partial_.try_emplace(sentence);
    if (inserted) {
      for (size_t l = 0; l < result_.layers.size(); ++l) {
        it->second.emplace_back(request_.pooling, C_);
      }
    }
    return it->second;
  }

  // Throws NonFiniteEmbeddingError for piece `p` whose requested `layer` came out non-finite:
  // reruns the piece (same starting state) with every layer tapped to find where the NaN/Inf
  // first appears, and scans the weights for the first non-finite one.
  [[noreturn]] void Fail(const Piece& p, const SequenceState& state, int layer) const {
    const int L = static_cast<int>(e_.model_->num_blocks());
    TokenBatch one;
    one.Add(std::span(ids_[p.sentence]).subspan(p.begin, p.end - p.begin));
    ForwardOptions all = fwd_;
    all.return_states = false;
    all.state_sequences.clear();
    all.layers.clear();
    for (int l = 0; l < e_.model_->num_layer_taps(); ++l) all.layers.push_back(l);
    int first = -1;
    e_.model_->Forward(
        one, all,
        [&](int l, const Matrix& h) {
          if (first < 0 && FirstNonFiniteRow(h.data(), h.rows(), C_, C_) >= 0) first = l;
        },
        std::span(&state, 1));
    std::string detail = " in " + LayerName(layer, L) + "; ";
    detail += first >= 0 ? "the hidden states first turn non-finite at " + LayerName(first, L)
                         : "the hidden states are finite: pooling overflowed";
    const auto weight = e_.model_->FindNonFiniteWeight();
    detail += "; " + (weight ? "first non-finite weight: " + *weight
                             : std::string("every weight is finite (the activations overflowed)"));
    detail += " (found in forward batch " + std::to_string(batch_index_) + ", tokens [" +
              std::to_string(p.begin) + ", " + std::to_string(p.end) + ") of the sentence's " +
              std::to_string(ids_[p.sentence].size()) + "; nothing after it was embedded)";
    throw NonFiniteEmbeddingError(p.sentence, "sentence " + std::to_string(p.sentence), detail);
  }

  const RwkvEmbedder& e_;
  const EmbedRequest& request_;
  EmbedResult& result_;
  const std::vector<std::vector<int32_t>> ids_;
  const TokenEmbedOptions& token_options_;
  std::vector<SequenceState>* final_states_;  // null unless asked for
  Packer packer_;
  const int64_t C_;
  std::vector<int> slot_;  // layer -> index in result
  ForwardOptions fwd_;
  int64_t batch_index_ = 0;  // 1-based
  SequenceState carried_;    // state of the sentence cut at the end of the last batch
  std::map<int64_t, std::vector<PoolingAccumulator>> partial_;  // sentences cut in pieces
};

std::vector<std::vector<int32_t>> RwkvEmbedder::Tokenize(
    std::span<const std::string> sentences) const {
  const int64_t n = static_cast<int64_t>(sentences.size());
  std::vector<std::vector<int32_t>> ids(n);
  for (int64_t i = 0; i < n; ++i) {
    ValidateUtf8(sentences[i], "sentence " + std::to_string(i));
    tokenizer_->EncodeAppend(sentences[i], ids[i]);
  }
  return ids;
}

EmbedResult RwkvEmbedder::Embed(std::span<const std::string> sentences,
                                const EmbedRequest& request) {
  // Tokenize everything up front (4 bytes per token: a 5 MB line is about 4 MB of ids).
  return EmbedTokens(Tokenize(sentences), request);
}

namespace {

// UsageError unless every position list is strictly ascending and inside its sentence.
void CheckPoolPositions(const std::vector<std::vector<int32_t>>& ids,
                        const std::vector<std::vector<int64_t>>& positions) {
  if (positions.empty()) return;
  if (positions.size() != ids.size()) {
    throw UsageError("pool positions given for " + std::to_string(positions.size()) +
                     " sentences, expected " + std::to_string(ids.size()));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t len = static_cast<int64_t>(ids[i].size());
    for (size_t j = 0; j < positions[i].size(); ++j) {
      const int64_t p = positions[i][j];
      if (p < 0 || p >= len || (j > 0 && p <= positions[i][j - 1])) {
        throw UsageError("sentence " + std::to_string(i) + ": pool position " + std::to_string(p) +
                         " is outside its " + std::to_string(len) + " tokens or out of order");
      }
    }
  }
}

// UsageError unless `state` is empty or shaped like the model's.
void CheckInitialState(const SequenceModel& model, const SequenceState& state) {
  if (state.empty()) return;
  const SequenceState zero = model.ZeroState();
  bool ok = state.size() == zero.size();
  for (size_t b = 0; ok && b < zero.size(); ++b) {
    ok = state[b].time_shift.size() == zero[b].time_shift.size() &&
         state[b].wkv.size() == zero[b].wkv.size() &&
         state[b].channel_shift.size() == zero[b].channel_shift.size();
  }
  if (!ok)
    throw UsageError("initial state does not have the model's shape (" + model.Describe() + ")");
}

}  // namespace

EmbedResult RwkvEmbedder::EmbedTokens(std::vector<std::vector<int32_t>> ids,
                                      const EmbedRequest& request,
                                      const TokenEmbedOptions& token_options,
                                      std::vector<SequenceState>* final_states) {
  const int64_t n = static_cast<int64_t>(ids.size()), C = Dim();
  CheckPoolPositions(ids, token_options.pool_positions);
  CheckInitialState(*model_, token_options.initial_state);
  EmbedResult result;
  result.layers = request.layers.empty() ? Layers() : request.layers;
  std::vector<uint8_t> seen(model_->num_layer_taps(), 0);
  for (const int l : result.layers) {
    if (l < 0 || l >= model_->num_layer_taps()) {
      throw UsageError("layer " + std::to_string(l) + " out of range 0.." +
                       std::to_string(model_->num_layer_taps() - 1));
    }
    if (seen[l]) throw UsageError("layer " + std::to_string(l) + " requested twice");
    seen[l] = 1;
  }
  for (size_t i = 0; i < result.layers.size(); ++i) result.embeddings.emplace_back(n, C);
  result.empty.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i].empty()) result.empty[i] = 1;
    result.tokens += static_cast<int64_t>(ids[i].size());
  }
  if (final_states != nullptr) {
    final_states->assign(n, {});
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i].empty()) {
        (*final_states)[i] =
            token_options.initial_state.empty() ? model_->ZeroState() : token_options.initial_state;
      }
    }
  }
  Run(*this, request, result, std::move(ids), token_options, final_states).All();
  return result;
}

}  // namespace rwkv_embed
