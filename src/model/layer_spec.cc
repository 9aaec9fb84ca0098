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

int LayerNumbering::HfIndexOf(int layer) const {
  if (layer <= 0 || layer > last()) return -1;
  if (hf == HfHiddenStates::kRwkv6) return layer - 1;
  if (layer == last()) return num_blocks;
  return layer == num_blocks ? -1 : layer;
}

int LayerNumbering::FromHfIndex(int hf_index) const {
  if (hf_index < 0 || hf_index > num_blocks) {
    throw UsageError("layer " + std::to_string(hf_index) + " out of range 0.." +
                     std::to_string(num_blocks) + " (HF hidden_states indices) for a model with " +
                     std::to_string(num_blocks) + " blocks");
  }
  if (hf == HfHiddenStates::kRwkv6) return hf_index + 1;
  if (hf_index == 0) {
    throw UsageError(
        "HF hidden_states[0] of RWKV-7 is the raw embeddings before pre_norm, which rwkv-embed "
        "does not produce; our layer 0 (after pre_norm) and layer " +
        std::to_string(num_blocks) +
        " (last block, before ln_out) are not in HF's tuple: ask for them without --hf-index");
  }
  return hf_index == num_blocks ? last() : hf_index;
}

std::vector<int> LayerNumbering::HfLayers() const {
  std::vector<int> layers;
  for (int l = 1; l <= last(); ++l) {
    if (HfIndexOf(l) >= 0) layers.push_back(l);
  }
  return layers;
}

std::string LayerNumbering::Label(int layer) const {
  const int hf_index = HfIndexOf(layer);
  const std::string hf_text =
      hf_index >= 0 ? " (HF hidden_states[" + std::to_string(hf_index) + "])"
                    : std::string(layer == 0 ? "; no HF index" : " (not in HF hidden_states)");
  if (layer == 0) {
    return "0 (embeddings after " +
           std::string(hf == HfHiddenStates::kRwkv6 ? "pre_ln" : "ln0/pre_norm") + hf_text + ")";
  }
  if (layer == last()) return std::to_string(layer) + " (after ln_out)" + hf_text;
  return std::to_string(layer) + hf_text;
}

std::string LayerNumbering::ShortLabel(int layer) const {
  if (layer == 0) return hf == HfHiddenStates::kRwkv6 ? "after pre_ln" : "after pre_norm";
  if (layer == last()) return "after ln_out";
  return "block " + std::to_string(layer);
}

std::string LayerNumbering::NoHfReason(int layer) const {
  if (HfIndexOf(layer) >= 0) return "";
  if (layer < 0 || layer > last()) return "no such layer";
  if (hf == HfHiddenStates::kRwkv6) {
    return "layer 0 (embeddings after pre_ln) has no HF hidden_states entry";
  }
  if (layer == 0) {
    return "layer 0 (after pre_norm) is not in RWKV-7's HF hidden_states ([0] there is the raw "
           "embedding before pre_norm)";
  }
  return "layer " + std::to_string(layer) + " (block " + std::to_string(layer) +
         ", before ln_out) is not in RWKV-7's HF hidden_states ([" + std::to_string(num_blocks) +
         "] there is after ln_out)";
}

std::vector<int> ParseLayerSpec(std::string_view spec, const LayerNumbering& numbering,
                                bool hf_index) {
  const int num_blocks = numbering.num_blocks, last = numbering.last();
  std::vector<int> layers;
  if (spec == "all") {
    if (hf_index) return numbering.HfLayers();
    for (int l = 0; l <= last; ++l) layers.push_back(l);
    return layers;
  }
  if (spec == "final") return {last};
  if (spec == "blocks") {
    for (int l = 1; l <= num_blocks; ++l) layers.push_back(l);
    return layers;
  }
  auto check = [&](int v) {
    if (hf_index) return numbering.FromHfIndex(v);
    if (v < 0 || v > last) {
      throw UsageError("layer " + std::to_string(v) + " out of range 0.." + std::to_string(last) +
                       " for a model with " + std::to_string(num_blocks) + " blocks");
    }
    return v;
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
      // Bounds are checked in the user's numbering, then each member is mapped.
      const int a = ParseInt(item.substr(0, dash), spec);
      const int b = ParseInt(item.substr(dash + sep_len), spec);
      check(a);
      check(b);
      if (b < a) throw UsageError("descending layer range '" + std::string(item) + "'");
      for (int l = a; l <= b; ++l) layers.push_back(check(l));
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

std::vector<int> ParseLayerSpec(std::string_view spec, int num_blocks, bool hf_index) {
  return ParseLayerSpec(spec, LayerNumbering{num_blocks, HfHiddenStates::kRwkv6}, hf_index);
}

std::string LayerLabel(int layer, int num_blocks) {
  return LayerNumbering{num_blocks, HfHiddenStates::kRwkv6}.Label(layer);
}

}  // namespace rwkv_embed
