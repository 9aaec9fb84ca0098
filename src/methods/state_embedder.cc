#include "methods/state_embedder.h"

#include <algorithm>

#include "core/error.h"

namespace rwkv_embed::methods {

StatePart ParseStatePart(std::string_view name) {
  if (name == "wkv") return StatePart::kWkv;
  if (name == "shift") return StatePart::kShift;
  if (name == "all") return StatePart::kAll;
  throw UsageError("unknown state part '" + std::string(name) + "' (expected wkv, shift or all)");
}

std::string_view StatePartName(StatePart part) {
  switch (part) {
    case StatePart::kWkv:
      return "wkv";
    case StatePart::kShift:
      return "shift";
    case StatePart::kAll:
      return "all";
  }
  return "?";
}

StateEmbedder::StateEmbedder(std::shared_ptr<RwkvEmbedder> model, StatePart part)
    : model_(std::move(model)), part_(part) {}

std::string StateEmbedder::Name() const { return "state-" + std::string(StatePartName(part_)); }

std::string StateEmbedder::Description() const {
  const char* what = part_ == StatePart::kWkv ? "WKV state of every head"
                     : part_ == StatePart::kShift
                         ? "token-shift states (time mix, channel mix)"
                         : "WKV state, time-shift and channel-shift states";
  return model_->Description() +
         "; sentence vector = block k's recurrent state after the last "
         "token (" +
         what + ", flattened, " + std::to_string(Dim()) + " floats)";
}

int64_t StateEmbedder::Dim() const {
  const BlockState s = model_->model().ZeroState().front();
  const int64_t wkv = static_cast<int64_t>(s.wkv.size());
  const int64_t shift = static_cast<int64_t>(s.time_shift.size() + s.channel_shift.size());
  return part_ == StatePart::kWkv ? wkv : part_ == StatePart::kShift ? shift : wkv + shift;
}

std::vector<int> StateEmbedder::Layers() const {
  std::vector<int> layers;
  for (int k = 1; k <= model_->model().num_blocks(); ++k) layers.push_back(k);
  return layers;
}

std::vector<LayerInfo> StateEmbedder::DescribeLayers() const {
  std::vector<LayerInfo> info;
  for (int k : Layers()) {
    info.push_back({k, "block " + std::to_string(k) + " state", std::nullopt,
                    "a recurrent state, not a hidden state"});
  }
  return info;
}

void StateEmbedder::Flatten(const BlockState& state, float* out) const {
  if (part_ != StatePart::kShift) out = std::copy(state.wkv.begin(), state.wkv.end(), out);
  if (part_ != StatePart::kWkv) {
    out = std::copy(state.time_shift.begin(), state.time_shift.end(), out);
    std::copy(state.channel_shift.begin(), state.channel_shift.end(), out);
  }
}

EmbedResult StateEmbedder::Embed(std::span<const std::string> sentences,
                                 const EmbedRequest& request) {
  std::vector<int> blocks = request.layers.empty() ? Layers() : request.layers;
  for (int k : blocks) {
    if (k < 1 || k > model_->model().num_blocks()) {
      throw UsageError(Name() + ": layer " + std::to_string(k) + " is not a block (1.." +
                       std::to_string(model_->model().num_blocks()) + ")");
    }
  }
  // The cheapest tap (after ln_out) keeps the pass short; its pooled rows are not used.
  EmbedRequest tap;
  tap.layers = {model_->model().num_layer_taps() - 1};
  tap.pooling = Pooling::kLast;
  const int64_t n = static_cast<int64_t>(sentences.size());
  EmbedResult r;
  r.layers = blocks;
  r.empty.assign(n, 0);
  for (size_t b = 0; b < blocks.size(); ++b) r.embeddings.emplace_back(n, Dim());
  // Sentences in chunks: a chunk's states (every block's, Finch-1B6: 12 MB a sentence) are
  // released once copied.
  constexpr int64_t kChunk = 256;
  const std::vector<std::vector<int32_t>> ids = model_->Tokenize(sentences);  // errors name i
  for (int64_t first = 0; first < n; first += kChunk) {
    const int64_t count = std::min(kChunk, n - first);
    std::vector<SequenceState> states;
    const EmbedResult pooled =
        model_->EmbedTokens({ids.begin() + first, ids.begin() + first + count}, tap, {}, &states);
    r.tokens += pooled.tokens;
    for (int64_t i = 0; i < count; ++i) {
      r.empty[first + i] = pooled.empty[i];
      if (pooled.empty[i]) continue;
      for (size_t b = 0; b < blocks.size(); ++b) {
        float* row = r.embeddings[b].Row(first + i);
        Flatten(states[i][blocks[b] - 1], row);
        if (request.normalization == Normalization::kL2) NormalizeL2(row, Dim());
      }
    }
  }
  CheckEmbeddingsFinite(r, Name());
  return r;
}

}  // namespace rwkv_embed::methods
