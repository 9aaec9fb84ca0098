#include "model/ablation.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/error.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed {
namespace {

constexpr int kMaxBlock = 1 << 20;  // far beyond any model; keeps "1-999999999" from allocating

const char* const kGrammar =
    "expected SWITCH:BLOCKS with SWITCH one of skip-tmix, skip-cmix, freeze-decay, zero-bonus, "
    "decay-scale=S and BLOCKS like 3, 1-4, 2,5 or all (1-based), e.g. skip-tmix:3";

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

int ParseBlockNumber(std::string_view s, std::string_view list) {
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > kMaxBlock) {
    throw UsageError("bad block " + Quoted(s) + " in " + Quoted(list) +
                     " (expected 1-based block numbers and ranges like 3, 1-4, 2,5 or all)");
  }
  if (v < 1) {
    throw UsageError("block " + Quoted(s) + " in " + Quoted(list) +
                     ": blocks are 1-based (block k's output is layer k)");
  }
  return v;
}

std::string FormatScale(float s) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), s);
  return std::string(buf, ec == std::errc() ? end : buf);
}

// "1,2,3,5" -> "1-3,5"
std::string FormatBlocks(const std::vector<int>& blocks) {
  if (blocks.empty()) return "all";
  std::string out;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(blocks[i]);
    if (j > i) out += "-" + std::to_string(blocks[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string AblationSpec::SwitchName() const {
  switch (what) {
    case AblationSwitch::kSkipTimeMix:
      return "skip-tmix";
    case AblationSwitch::kSkipChannelMix:
      return "skip-cmix";
    case AblationSwitch::kFreezeDecay:
      return "freeze-decay";
    case AblationSwitch::kZeroBonus:
      return "zero-bonus";
    case AblationSwitch::kDecayScale:
      return "decay-scale=" + FormatScale(scale);
  }
  return "?";
}

std::string AblationSpec::Name() const { return SwitchName() + ":" + FormatBlocks(blocks); }

std::vector<int> ParseBlockList(std::string_view text) {
  if (text == "all") return {};
  if (text.empty()) throw UsageError("empty block list (expected e.g. 3, 1-4, 2,5 or all)");
  std::vector<int> blocks;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = text.substr(pos, comma - pos);
    size_t sep = item.find("..");
    size_t len = 2;
    if (sep == std::string_view::npos) {
      sep = item.find('-');
      len = 1;
    }
    if (sep != std::string_view::npos) {
      const int a = ParseBlockNumber(item.substr(0, sep), text);
      const int b = ParseBlockNumber(item.substr(sep + len), text);
      if (b < a) {
        throw UsageError("reversed block range " + Quoted(item) + " in " + Quoted(text));
      }
      for (int k = a; k <= b; ++k) blocks.push_back(k);
    } else {
      blocks.push_back(ParseBlockNumber(item, text));
    }
    pos = comma + 1;
  }
  std::sort(blocks.begin(), blocks.end());
  const auto dup = std::adjacent_find(blocks.begin(), blocks.end());
  if (dup != blocks.end()) {
    throw UsageError("block " + std::to_string(*dup) + " appears twice in " + Quoted(text));
  }
  return blocks;
}

AblationSpec ParseAblationSwitch(std::string_view text) {
  AblationSpec spec;
  const size_t eq = text.find('=');
  const std::string_view name = text.substr(0, eq);
  if (name == "skip-tmix" || name == "tmix") {
    spec.what = AblationSwitch::kSkipTimeMix;
  } else if (name == "skip-cmix" || name == "cmix") {
    spec.what = AblationSwitch::kSkipChannelMix;
  } else if (name == "freeze-decay") {
    spec.what = AblationSwitch::kFreezeDecay;
  } else if (name == "zero-bonus") {
    spec.what = AblationSwitch::kZeroBonus;
  } else if (name == "decay-scale") {
    spec.what = AblationSwitch::kDecayScale;
  } else {
    throw UsageError("unknown ablation switch " + Quoted(name) + " in " + Quoted(text) +
                     " (switches: skip-tmix, skip-cmix, freeze-decay, zero-bonus, decay-scale=S)");
  }
  if (spec.what != AblationSwitch::kDecayScale) {
    if (eq != std::string_view::npos) {
      throw UsageError("ablation switch " + Quoted(name) + " takes no value, got " + Quoted(text));
    }
    return spec;
  }
  if (eq == std::string_view::npos) {
    throw UsageError("decay-scale needs a value, e.g. decay-scale=2.0 (got " + Quoted(text) + ")");
  }
  const std::string_view value = text.substr(eq + 1);
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), spec.scale);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
      !std::isfinite(spec.scale) || spec.scale < 0.0f) {
    throw UsageError("bad decay scale " + Quoted(value) + " in " + Quoted(text) +
                     " (expected a finite number >= 0, e.g. decay-scale=2.0)");
  }
  return spec;
}

AblationSpec ParseAblationSpec(std::string_view text) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    throw UsageError("ablation " + Quoted(text) + " names no blocks (" + kGrammar + ")");
  }
  AblationSpec spec = ParseAblationSwitch(text.substr(0, colon));
  try {
    spec.blocks = ParseBlockList(text.substr(colon + 1));
  } catch (const UsageError& e) {
    throw UsageError("ablation " + Quoted(text) + ": " + e.what());
  }
  return spec;
}

std::vector<AblationSpec> ParseAblationGrid(std::string_view text) {
  std::vector<AblationSpec> grid;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = text.substr(pos, comma - pos);
    if (item.empty()) throw UsageError("empty switch in the list " + Quoted(text));
    grid.push_back(ParseAblationSwitch(item));
    for (size_t i = 0; i + 1 < grid.size(); ++i) {
      if (grid[i].SwitchName() == grid.back().SwitchName()) {
        throw UsageError("switch " + Quoted(item) + " appears twice in " + Quoted(text));
      }
    }
    pos = comma + 1;
  }
  return grid;
}

std::vector<int> ResolveBlocks(const AblationSpec& spec, int64_t num_blocks) {
  if (spec.blocks.empty()) {
    std::vector<int> all(static_cast<size_t>(num_blocks));
    for (int64_t k = 0; k < num_blocks; ++k) all[k] = static_cast<int>(k) + 1;
    return all;
  }
  if (spec.blocks.back() > num_blocks) {
    throw UsageError("ablation " + Quoted(spec.Name()) + ": block " +
                     std::to_string(spec.blocks.back()) + " is beyond the model's " +
                     std::to_string(num_blocks) + " blocks (1-" + std::to_string(num_blocks) + ")");
  }
  return spec.blocks;
}

std::vector<BlockOverride> AblationOverrides(std::span<const AblationSpec> specs,
                                             int64_t num_blocks) {
  if (specs.empty()) return {};
  std::vector<BlockOverride> overrides(static_cast<size_t>(num_blocks));
  for (const AblationSpec& spec : specs) {
    for (int block : ResolveBlocks(spec, num_blocks)) {
      BlockOverride& o = overrides[block - 1];
      switch (spec.what) {
        case AblationSwitch::kSkipTimeMix:
          o.skip_time_mix = true;
          break;
        case AblationSwitch::kSkipChannelMix:
          o.skip_channel_mix = true;
          break;
        case AblationSwitch::kFreezeDecay:
          o.freeze_decay = true;
          break;
        case AblationSwitch::kZeroBonus:
          o.zero_bonus = true;
          break;
        case AblationSwitch::kDecayScale:
          o.decay_rate_scale *= spec.scale;
          break;
      }
    }
  }
  return overrides;
}

std::string AblationsName(std::span<const AblationSpec> specs) {
  std::string name;
  for (const AblationSpec& s : specs) name += (name.empty() ? "" : " + ") + s.Name();
  return name;
}

void ApplyAblations(std::span<const AblationSpec> specs, const SequenceModel& model,
                    RwkvEmbedderOptions& options) {
  options.overrides = AblationOverrides(specs, model.num_blocks());
}

void ApplyAblations(std::span<const AblationSpec> specs, RwkvEmbedder& embedder) {
  ApplyAblations(specs, embedder.model(), embedder.options());
}

}  // namespace rwkv_embed
