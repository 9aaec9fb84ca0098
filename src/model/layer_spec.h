// Layer selections as users write them. Our numbering: 0 = embeddings after pre_ln, k = output of
// block k (1-based), L+1 = after ln_out. Hugging Face's output_hidden_states has no embedding
// entry, so HF index i is our layer i+1 (HF index L is after ln_out).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rwkv_embed {

// Parses "all", "final" (= L+1, the last HF hidden state), "blocks" (1..L), and comma-separated
// numbers and ranges ("1,3,5", "0-4", "2..6"). With hf_index the numbers are HF indices (0..L)
// and are returned in our numbering. Order and duplicates follow the spec (duplicates rejected).
// Throws UsageError naming the bad item and the valid range.
std::vector<int> ParseLayerSpec(std::string_view spec, int num_blocks, bool hf_index = false);

// "layer 3 (HF hidden_states[2])"-style label; the embedding layer 0 has no HF index.
std::string LayerLabel(int layer, int num_blocks);
inline int HfIndexOf(int layer) { return layer - 1; }  // -1 for layer 0 (no HF entry)

}  // namespace rwkv_embed
