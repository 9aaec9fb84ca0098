// Ablations as users write them, turned into the per-block BlockOverride switches the forward
// pass honours (model/sequence_model.h; equations in docs/design.md#rwkv-6-block RWKV-6,
// docs/design.md#rwkv-7-block RWKV-7).
//
// Grammar: SWITCH[=VALUE]:BLOCKS, e.g. skip-tmix:3, skip-cmix:1-4, freeze-decay:all,
// decay-scale=2.0:5-8, zero-bonus:1,3,12. Blocks are 1-based (block k's output is layer k, as in
// reports); BLOCKS is "all" or a comma list of numbers and ranges (a-b or a..b).
//   skip-tmix (alias tmix)     the time-mix (attention) branch of the block adds nothing
//   skip-cmix (alias cmix)     the channel-mix (feed-forward) branch adds nothing
//   freeze-decay               the decay's data-dependent LoRA term removed
//   zero-bonus                 RWKV-6 u = time_faaaa = 0; RWKV-7 the r_k term dropped
//   decay-scale=S              the decay rate multiplied by S >= 0 (S > 1 forgets faster)
// Several specs combine: switches add up, decay scales multiply.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/sequence_model.h"

namespace rwkv_embed {

class RwkvEmbedder;
struct RwkvEmbedderOptions;

enum class AblationSwitch { kSkipTimeMix, kSkipChannelMix, kFreezeDecay, kZeroBonus, kDecayScale };

struct AblationSpec {
  AblationSwitch what = AblationSwitch::kSkipTimeMix;
  float scale = 1.0f;       // kDecayScale only
  std::vector<int> blocks;  // 1-based, ascending, distinct; empty = every block ("all")

  // The switch alone, canonical: "skip-tmix", "decay-scale=2".
  std::string SwitchName() const;
  // Canonical text that parses back to the same spec: "skip-tmix:1-3,5", "decay-scale=2:all".
  std::string Name() const;
};

// Parses one spec (grammar above). UsageError naming the spec and the bad part.
AblationSpec ParseAblationSpec(std::string_view text);

// Parses a switch without blocks ("tmix", "decay-scale=2"), as in `ablate --grid`; the result
// has blocks = all. UsageError naming the bad part.
AblationSpec ParseAblationSwitch(std::string_view text);

// A comma-separated list of switches ("tmix,cmix,freeze-decay,zero-bonus,decay-scale=2").
std::vector<AblationSpec> ParseAblationGrid(std::string_view text);

// "all" -> {} (every block); "1-4,7" -> {1,2,3,4,7}. UsageError for 0, a reversed range, a
// duplicate or anything not a number.
std::vector<int> ParseBlockList(std::string_view text);

// The blocks of `spec` for a model of `num_blocks` blocks (all of them for "all"). UsageError for
// a block beyond the model's.
std::vector<int> ResolveBlocks(const AblationSpec& spec, int64_t num_blocks);

// One BlockOverride per block for a model of `num_blocks` blocks; empty when `specs` is.
std::vector<BlockOverride> AblationOverrides(std::span<const AblationSpec> specs,
                                             int64_t num_blocks);

// The specs' names joined by " + " ("" for none): how reports name an ablated model.
std::string AblationsName(std::span<const AblationSpec> specs);

// Sets options.overrides for `model` (cleared when `specs` is empty).
void ApplyAblations(std::span<const AblationSpec> specs, const SequenceModel& model,
                    RwkvEmbedderOptions& options);
// The same on a loaded embedder's own options.
void ApplyAblations(std::span<const AblationSpec> specs, RwkvEmbedder& embedder);

}  // namespace rwkv_embed
