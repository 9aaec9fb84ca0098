#include "pooling/pooling.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
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

// A long text is pooled piece by piece across forward batches; the result must be bit-identical
// to pooling all rows at once, for every pooling and every way of cutting the sequence.
TEST(PoolingAccumulatorTest, PiecewiseIsBitIdenticalToOnePass) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t dim = 5, stride = 7;
  for (const std::string& name : PoolingNames()) {
    const Pooling p = ParsePooling(name);
    for (int64_t T : {1, 2, 3, 17, 200}) {
      std::vector<float> h(T * stride);
      for (float& v : h) v = normal(rng);
      std::vector<float> whole(dim);
      Pool(p, h.data(), T, dim, stride, whole.data());
      for (int trial = 0; trial < 20; ++trial) {
        PoolingAccumulator acc(p, dim);
        int64_t t = 0;
        while (t < T) {
          const int64_t piece = std::min<int64_t>(T - t, 1 + rng() % 16);
          acc.Add(h.data() + t * stride, piece, stride);
          t += piece;
          EXPECT_EQ(acc.count(), t);
        }
        std::vector<float> pieces(dim);
        acc.Finish(pieces.data());
        for (int64_t c = 0; c < dim; ++c) {
          // Bitwise: the same float64 operations in the same order.
          EXPECT_EQ(std::bit_cast<uint32_t>(pieces[c]), std::bit_cast<uint32_t>(whole[c]))
              << name << " T=" << T << " c=" << c;
        }
      }
    }
  }
}

TEST(PoolingAccumulatorTest, WeightedMeanUsesPositionsOverTheWholeSequence) {
  // Rows 1, 3, 5 (dim 1) in pieces [1], [3, 5]: (1*1 + 2*3 + 3*5) / 6 = 22/6.
  const std::vector<float> a = {1}, b = {3, 5};
  PoolingAccumulator acc(Pooling::kWeightedMean, 1);
  acc.Add(a.data(), 1, 1);
  acc.Add(b.data(), 2, 1);
  float out = 0;
  acc.Finish(&out);
  EXPECT_FLOAT_EQ(out, 22.0f / 6.0f);
  PoolingAccumulator sq(Pooling::kMeanSqrtLen, 1);
  sq.Add(a.data(), 1, 1);
  sq.Add(b.data(), 2, 1);
  sq.Finish(&out);
  EXPECT_FLOAT_EQ(out, 9.0f / std::sqrt(3.0f));
}

TEST(PoolingTest, FirstNonFiniteRowFindsNanAndInfAnywhere) {
  std::vector<float> h = {1, 2, 99, 3, 4, 99, 5, 6, 99};  // T=3, dim=2, stride=3
  EXPECT_EQ(FirstNonFiniteRow(h.data(), 3, 2, 3), -1);
  h[2] = std::numeric_limits<float>::quiet_NaN();  // outside dim: not looked at
  EXPECT_EQ(FirstNonFiniteRow(h.data(), 3, 2, 3), -1);
  h[7] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(FirstNonFiniteRow(h.data(), 3, 2, 3), 2);
  h[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(FirstNonFiniteRow(h.data(), 3, 2, 3), 1);
  h[0] = std::numeric_limits<float>::max();  // large but finite
  EXPECT_EQ(FirstNonFiniteRow(h.data(), 1, 2, 3), -1);
}

}  // namespace
}  // namespace rwkv_embed
