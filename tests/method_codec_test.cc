// report/method_codec.h: a method's results survive the trip to bytes and back exactly (how
// rwkv-embed-mpi gathers the methods other ranks evaluated), NaN and infinities included.
#include "report/method_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace rwkv_embed::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

eval::MethodResult Sample() {
  eval::MethodResult m;
  m.method = "rwkv:tiny";
  m.description = "RWKV-6 \"tiny\" — ünïcode";
  m.layer_info = {{0, "after pre_ln", std::nullopt, "no HF entry"}, {1, "block 1", 0, ""}};
  m.control_of = "rwkv";
  m.pooling_of = "rwkv";
  m.fitted_on = "mrpc train (3668 pairs)";
  m.token_weights.push_back({2, {"He", " said"}, {0.25, 0.75}});
  m.load_seconds = 0.1 + 0.2;  // not a short decimal
  m.peak_rss_kib = 12345;
  m.peak_rss_isolated = true;
  eval::SplitResult s;
  s.task = "mrpc";
  s.split = "train-20";
  s.source = "/data/mrpc/train.tsv";
  s.subset_seed = 18446744073709551615ull;
  s.n_pairs = 3;
  s.n_sentences = 6;
  s.empty_sentences = 1;
  s.tokens = 77;
  s.embed_seconds = 1e-300;
  s.binary = true;
  s.labels = {1, 0, 1};
  s.threshold_source = "train minus the 20 scored pairs";
  s.threshold_pairs = 20;
  eval::LayerResult l;
  l.layer = 1;
  l.hf_layer = 0;
  l.label = "block 1";
  l.cosines = {0.3333333333333333, -kInf, 5e-324};
  l.undefined_cosines = 1;
  l.spearman = -0.5;
  l.pearson = kNaN;
  l.spearman_ci = {0.25, kNaN, kNaN, 0.95, 50, 50};
  l.roc_auc = kNaN;  // one class only: undefined
  l.ap = 0.75;
  l.classification = metrics::Classification{0.5, 0.66, 1, 0.5, 0.66, 1, 0, 1, 1};
  l.threshold_fit_accuracy = 0.7;
  s.layers = {l, eval::LayerResult{}};
  m.splits = {s};
  m.spread_split = "train-20";
  m.spread = {{1, {0, 1}, {0.1, kNaN}, {2, 0.1, kNaN, 0.1, 0.1}}};
  return m;
}

bool Same(double a, double b) { return std::isnan(a) ? std::isnan(b) : a == b; }

TEST(MethodCodecTest, EveryFieldRoundTripsExactlyNaNIncluded) {
  const eval::MethodResult m = Sample();
  const eval::MethodResult r = MethodResultFromJson(DecodeCbor(EncodeCbor(MethodResultToJson(m))));
  EXPECT_EQ(r.method, m.method);
  EXPECT_EQ(r.description, m.description);
  ASSERT_EQ(r.layer_info.size(), 2u);
  EXPECT_FALSE(r.layer_info[0].hf_index.has_value());
  EXPECT_EQ(r.layer_info[0].no_hf_reason, "no HF entry");
  EXPECT_EQ(r.layer_info[1].hf_index, 0);
  EXPECT_EQ(r.control_of, "rwkv");
  EXPECT_EQ(r.pooling_of, "rwkv");
  EXPECT_EQ(r.fitted_on, m.fitted_on);
  ASSERT_EQ(r.token_weights.size(), 1u);
  EXPECT_EQ(r.token_weights[0].layer, 2);
  EXPECT_EQ(r.token_weights[0].tokens, m.token_weights[0].tokens);
  EXPECT_EQ(r.token_weights[0].weights, m.token_weights[0].weights);
  EXPECT_EQ(r.load_seconds, m.load_seconds);
  EXPECT_EQ(r.peak_rss_kib, 12345);
  EXPECT_TRUE(r.peak_rss_isolated);
  ASSERT_EQ(r.splits.size(), 1u);
  const eval::SplitResult& s = r.splits[0];
  EXPECT_EQ(s.subset_seed, m.splits[0].subset_seed);
  EXPECT_EQ(s.embed_seconds, 1e-300);
  EXPECT_EQ(s.labels, m.splits[0].labels);
  EXPECT_EQ(s.threshold_source, m.splits[0].threshold_source);
  EXPECT_EQ(s.threshold_pairs, 20);
  EXPECT_EQ(s.n_sentences, 6);
  EXPECT_EQ(s.empty_sentences, 1);
  EXPECT_EQ(s.tokens, 77);
  EXPECT_TRUE(s.binary);
  ASSERT_EQ(s.layers.size(), 2u);
  const eval::LayerResult& l = s.layers[0];
  const eval::LayerResult& w = m.splits[0].layers[0];
  ASSERT_EQ(l.cosines.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(Same(l.cosines[i], w.cosines[i])) << i;
  EXPECT_TRUE(std::isnan(l.roc_auc));
  EXPECT_TRUE(std::isnan(l.pearson));
  EXPECT_TRUE(std::isnan(l.spearman_ci.lo) && std::isnan(l.spearman_ci.hi));
  EXPECT_EQ(l.spearman_ci.estimate, 0.25);
  EXPECT_EQ(l.spearman_ci.undefined, 50);
  EXPECT_EQ(l.ap, 0.75);
  ASSERT_TRUE(l.classification.has_value());
  EXPECT_EQ(l.classification->f1, 0.66);
  EXPECT_EQ(l.classification->fn, 1);
  EXPECT_EQ(l.hf_layer, 0);
  EXPECT_FALSE(s.layers[1].classification.has_value());
  EXPECT_FALSE(s.layers[1].hf_layer.has_value());
  ASSERT_EQ(r.spread.size(), 1u);
  EXPECT_TRUE(std::isnan(r.spread[0].spearman[1]));
  EXPECT_TRUE(std::isnan(r.spread[0].summary.sd));
  EXPECT_EQ(r.spread[0].seeds, (std::vector<uint64_t>{0, 1}));
  // Encoding again gives the same bytes: nothing was lost or reordered.
  EXPECT_EQ(EncodeCbor(MethodResultToJson(r)), EncodeCbor(MethodResultToJson(m)));
  // Why CBOR: JSON text would have turned the undefined ROC-AUC into null.
  EXPECT_EQ(MethodResultToJson(m).dump().find("NaN"), std::string::npos);
}

TEST(MethodCodecTest, MalformedInputIsAFormatErrorNamingTheField) {
  nlohmann::json j = MethodResultToJson(Sample());
  j.erase("control_of");
  try {
    (void)MethodResultFromJson(j);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("control_of"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)DecodeCbor({0xff, 0x00}), FormatError);
}

}  // namespace
}  // namespace rwkv_embed::report
