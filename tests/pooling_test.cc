#include "pooling/pooling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"

namespace rwkv_embed {
namespace {

// h = [[1, -2], [3, 4], [5, 0]]  (T=3, dim=2)
const std::vector<float> kH = {1, -2, 3, 4, 5, 0};

std::vector<float> PoolH(Pooling p) {
  std::vector<float> out(2);
  Pool(p, kH.data(), 3, 2, 2, out.data());
  return out;
}

TEST(PoolingTest, MatchesSentenceTransformersDefinitions) {
  EXPECT_EQ(PoolH(Pooling::kMean), (std::vector<float>{3.0f, 2.0f / 3.0f}));
  EXPECT_EQ(PoolH(Pooling::kMax), (std::vector<float>{5.0f, 4.0f}));
  EXPECT_EQ(PoolH(Pooling::kFirst), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(PoolH(Pooling::kLast), (std::vector<float>{5.0f, 0.0f}));
  // weights 1,2,3 / 6: (1+6+15)/6, (-2+8+0)/6
  const auto wm = PoolH(Pooling::kWeightedMean);
  EXPECT_FLOAT_EQ(wm[0], 22.0f / 6.0f);
  EXPECT_FLOAT_EQ(wm[1], 1.0f);
  const auto sq = PoolH(Pooling::kMeanSqrtLen);
  EXPECT_FLOAT_EQ(sq[0], 9.0f / std::sqrt(3.0f));
  EXPECT_FLOAT_EQ(sq[1], 2.0f / std::sqrt(3.0f));
}

TEST(PoolingTest, RespectsRowStride) {
  // Same rows embedded in a wider matrix (stride 3).
  const std::vector<float> wide = {1, -2, 99, 3, 4, 99, 5, 0, 99};
  std::vector<float> out(2);
  Pool(Pooling::kMax, wide.data(), 3, 2, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{5.0f, 4.0f}));
}

TEST(PoolingTest, ParsesNamesAndAliases) {
  for (const auto& name : PoolingNames()) EXPECT_EQ(PoolingName(ParsePooling(name)), name);
  EXPECT_EQ(ParsePooling("cls"), Pooling::kFirst);
  EXPECT_EQ(ParsePooling("lasttoken"), Pooling::kLast);
  EXPECT_THROW(ParsePooling("median"), UsageError);
  EXPECT_EQ(ParseNormalization("l2"), Normalization::kL2);
  EXPECT_THROW(ParseNormalization("l1"), UsageError);
}

TEST(PoolingTest, L2NormalizationKeepsZeroVectorsZero) {
  std::vector<float> v = {3, 4};
  NormalizeL2(v.data(), 2);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  std::vector<float> z = {0, 0};
  NormalizeL2(z.data(), 2);
  EXPECT_EQ(z, (std::vector<float>{0, 0}));
}

}  // namespace
}  // namespace rwkv_embed
