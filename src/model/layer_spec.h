// Layer selections as users write them. Our numbering: 0 = embeddings after the input LayerNorm
// (pre_ln / ln0), k = output of block k (1-based), L+1 = after ln_out. Hugging Face's
// output_hidden_states indexes the same hidden states differently per architecture:
//   RWKV-6: no embedding entry, HF index i is our layer i+1 (HF index L is after ln_out);
//   RWKV-7 (fla): [0] = raw embeddings before pre_norm (not one of ours), [i] = our layer i for
//   i = 1..L-1, [L] = our layer L+1; our layers 0 and L are not in HF's tuple.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rwkv_embed {

enum class HfHiddenStates { kRwkv6, kRwkv7 };

// Layer identity of a model: how many blocks, and how HF indexes its hidden states.
struct LayerNumbering {
  int num_blocks = 0;
  HfHiddenStates hf = HfHiddenStates::kRwkv6;

  int last() const { return num_blocks + 1; }
  // HF index of our layer, or -1 when HF's tuple has no such entry.
  int HfIndexOf(int layer) const;
  // Our layer for an HF index. Throws UsageError for an index out of range, or one whose hidden
  // state we do not produce (RWKV-7's [0], the embeddings before pre_norm).
  int FromHfIndex(int hf_index) const;
  // Every layer HF's tuple holds, in our numbering, ascending.
  std::vector<int> HfLayers() const;
  // "3 (HF hidden_states[2])"-style label.
  std::string Label(int layer) const;
  // What the layer is: "after pre_ln" (RWKV-6) / "after pre_norm" (RWKV-7), "block 3",
  // "after ln_out".
  std::string ShortLabel(int layer) const;
  // Why HF's tuple has no entry for a layer (HfIndexOf(layer) < 0); "" when it has one.
  std::string NoHfReason(int layer) const;
};

// Parses "all", "final" (= L+1, the last HF hidden state), "blocks" (1..L), and comma-separated
// numbers and ranges ("1,3,5", "0-4", "2..6"). With hf_index the numbers are HF indices and are
// returned in our numbering ("all" = every layer HF has). Order and duplicates follow the spec
// (duplicates rejected). Throws UsageError naming the bad item and the valid range.
std::vector<int> ParseLayerSpec(std::string_view spec, const LayerNumbering& numbering,
                                bool hf_index = false);
// RWKV-6 numbering.
std::vector<int> ParseLayerSpec(std::string_view spec, int num_blocks, bool hf_index = false);

// RWKV-6 label ("layer 3 (HF hidden_states[2])"); the embedding layer 0 has no HF index.
std::string LayerLabel(int layer, int num_blocks);

}  // namespace rwkv_embed
