// Layer selections and their Hugging Face indices, for both architectures' hidden_states tuples.
#include "model/layer_spec.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace rwkv_embed {
namespace {

using V = std::vector<int>;

TEST(LayerSpecTest, OurNumbering) {
  EXPECT_EQ(ParseLayerSpec("all", 3), (V{0, 1, 2, 3, 4}));
  EXPECT_EQ(ParseLayerSpec("final", 3), (V{4}));
  EXPECT_EQ(ParseLayerSpec("blocks", 3), (V{1, 2, 3}));
  EXPECT_EQ(ParseLayerSpec("4,0-2", 3), (V{4, 0, 1, 2}));
  EXPECT_EQ(ParseLayerSpec("1..3", 3), (V{1, 2, 3}));
  EXPECT_THROW(ParseLayerSpec("5", 3), UsageError);
  EXPECT_THROW(ParseLayerSpec("1,1", 3), UsageError);
  EXPECT_THROW(ParseLayerSpec("3-1", 3), UsageError);
  EXPECT_THROW(ParseLayerSpec("x", 3), UsageError);
}

// RWKV-6: HF hidden_states[i] = our layer i + 1 (no embedding entry).
TEST(LayerSpecTest, Rwkv6HfIndices) {
  const LayerNumbering n{3, HfHiddenStates::kRwkv6};
  EXPECT_EQ(ParseLayerSpec("0,3", n, true), (V{1, 4}));
  EXPECT_EQ(ParseLayerSpec("all", n, true), (V{1, 2, 3, 4}));
  EXPECT_EQ(ParseLayerSpec("0-2", n, true), (V{1, 2, 3}));
  EXPECT_THROW(ParseLayerSpec("4", n, true), UsageError);
  EXPECT_EQ(n.HfIndexOf(0), -1);
  EXPECT_EQ(n.HfIndexOf(4), 3);
  EXPECT_EQ(n.Label(0), "0 (embeddings after pre_ln; no HF index)");
  EXPECT_EQ(n.Label(4), "4 (after ln_out) (HF hidden_states[3])");
  EXPECT_EQ(LayerLabel(2, 3), "2 (HF hidden_states[1])");
}

// RWKV-7 (fla): [0] = raw embeddings before pre_norm (none of ours), [i] = our i for i < L,
// [L] = our L + 1; our layers 0 and L have no HF index.
TEST(LayerSpecTest, Rwkv7HfIndices) {
  const LayerNumbering n{3, HfHiddenStates::kRwkv7};
  EXPECT_EQ(ParseLayerSpec("1,2,3", n, true), (V{1, 2, 4}));
  EXPECT_EQ(ParseLayerSpec("all", n, true), (V{1, 2, 4}));
  EXPECT_EQ(ParseLayerSpec("1-3", n, true), (V{1, 2, 4}));
  EXPECT_EQ(ParseLayerSpec("final", n, true), (V{4}));
  try {
    ParseLayerSpec("0", n, true);
    ADD_FAILURE() << "HF index 0 accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("before pre_norm"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ParseLayerSpec("4", n, true), UsageError);
  EXPECT_EQ(n.HfIndexOf(0), -1);
  EXPECT_EQ(n.HfIndexOf(1), 1);
  EXPECT_EQ(n.HfIndexOf(3), -1);
  EXPECT_EQ(n.HfIndexOf(4), 3);
  EXPECT_EQ(n.HfLayers(), (V{1, 2, 4}));
  EXPECT_EQ(n.Label(3), "3 (not in HF hidden_states)");
  EXPECT_EQ(n.Label(4), "4 (after ln_out) (HF hidden_states[3])");
  // Every HF index maps back to a layer whose HF index it is.
  for (int hf = 1; hf <= 3; ++hf) EXPECT_EQ(n.HfIndexOf(n.FromHfIndex(hf)), hf);
}

}  // namespace
}  // namespace rwkv_embed
