#include "model/layer_spec.h"

#include <algorithm>
#include <charconv>

#include "core/error.h"

namespace rwkv_embed {
namespace {

int ParseInt(std::string_view s, std::string_view spec) {
  int v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) {
    throw UsageError("invalid layer '" + std::string(s) + "' in layer spec '" + std::string(spec) +
                     "' (use numbers, ranges like 1-5, 'all' or 'final')");
  }
  return v;
}

}  // namespace

std::vector<int> ParseLayerSpec(std::string_view spec, int num_blocks, bool hf_index) {
  const int last = num_blocks + 1;
  std::vector<int> layers;
  if (spec == "all") {
    for (int l = hf_index ? 1 : 0; l <= last; ++l) layers.push_back(l);
    return layers;
  }
  if (spec == "final") return {last};
  if (spec == "blocks") {
    for (int l = 1; l <= num_blocks; ++l) layers.push_back(l);
    return layers;
  }
  const int lo = 0, hi = hf_index ? num_blocks : last;
  auto check = [&](int v) {
    if (v < lo || v > hi) {
      throw UsageError("layer " + std::to_string(v) + " out of range " + std::to_string(lo) + ".." +
                       std::to_string(hi) + (hf_index ? " (HF hidden_states indices)" : "") +
                       " for a model with " + std::to_string(num_blocks) + " blocks");
    }
    return hf_index ? v + 1 : v;
  };
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    std::string_view item = spec.substr(pos, comma - pos);
    size_t dash = item.find("..");
    size_t sep_len = 2;
    if (dash == std::string_view::npos) {
      dash = item.find('-', 1);
      sep_len = 1;
    }
    if (dash != std::string_view::npos) {
      const int a = check(ParseInt(item.substr(0, dash), spec));
      const int b = check(ParseInt(item.substr(dash + sep_len), spec));
      if (b < a) throw UsageError("descending layer range '" + std::string(item) + "'");
      for (int l = a; l <= b; ++l) layers.push_back(l);
    } else {
      layers.push_back(check(ParseInt(item, spec)));
    }
    pos = comma + 1;
  }
  std::vector<int> sorted = layers;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw UsageError("layer spec '" + std::string(spec) + "' names a layer twice");
  }
  return layers;
}

std::string LayerLabel(int layer, int num_blocks) {
  if (layer == 0) return "0 (embeddings after pre_ln; no HF index)";
  const std::string hf = " (HF hidden_states[" + std::to_string(layer - 1) + "])";
  if (layer == num_blocks + 1) return std::to_string(layer) + " (after ln_out)" + hf;
  return std::to_string(layer) + hf;
}

}  // namespace rwkv_embed
