// Evaluator tests on a fake Embedder whose vectors are chosen so every cosine, and hence every
// metric, is known by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

#include "core/error.h"
#include "eval/evaluator.h"
#include "eval/resources.h"
#include "test_util.h"

namespace rwkv_embed::eval {
namespace {

// Two layers (0 and 1) of 2-d vectors looked up by sentence. Layer 1 is layer 0 rotated by 90
// degrees (cosines are identical), except where `layer1` overrides a sentence.
class FakeEmbedder : public Embedder {
 public:
  std::map<std::string, std::pair<float, float>> vectors, layer1;
  int calls = 0;

  std::string Name() const override { return "fake"; }
  std::string Description() const override { return "hand-made vectors"; }
  int64_t Dim() const override { return 2; }
  std::vector<int> Layers() const override { return {0, 1}; }
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override {
    ++calls;
    EmbedResult r;
    r.layers = request.layers.empty() ? Layers() : request.layers;
    const int64_t n = static_cast<int64_t>(sentences.size());
    r.empty.assign(n, 0);
    for (int layer : r.layers) {
      Matrix m(n, 2);
      for (int64_t i = 0; i < n; ++i) {
        auto v = vectors.at(sentences[i]);
        if (layer == 1) {
          const auto it = layer1.find(sentences[i]);
          v = it != layer1.end() ? it->second : std::make_pair(-v.second, v.first);
        }
        m.Row(i)[0] = v.first;
        m.Row(i)[1] = v.second;
        if (v.first == 0 && v.second == 0) r.empty[i] = 1;
      }
      r.embeddings.push_back(std::move(m));
    }
    r.tokens = n;
    return r;
  }
};

SentencePair Pair(const std::string& id, const std::string& a, const std::string& b, double y) {
  return {id, a, b, y};
}

// Cosines of the scored pairs: (x, a1) = 1, (x, a2) = 0.6, (x, a3) = 0, (x, a4) = -0.6.
FakeEmbedder MakeFake() {
  FakeEmbedder f;
  f.vectors = {{"x", {1, 0}},
               {"a1", {2, 0}},
               {"a2", {0.6f, 0.8f}},
               {"a3", {0, 1}},
               {"a4", {-0.6f, 0.8f}},
               {"f1", {0.9f, std::sqrt(1 - 0.81f)}},
               {"f2", {0.7f, std::sqrt(1 - 0.49f)}},
               {"f3", {0.65f, std::sqrt(1 - 0.4225f)}},
               {"f4", {0.1f, std::sqrt(1 - 0.01f)}},
               {"zero", {0, 0}}};
  return f;
}

PairDataset Scored() {
  PairDataset d;
  d.task = "fake";
  d.split = "dev";
  d.binary = true;
  d.pairs = {Pair("1", "x", "a1", 1), Pair("2", "x", "a2", 1), Pair("3", "x", "a3", 0),
             Pair("4", "x", "a4", 0)};
  return d;
}

// Fitting split: cosines 0.9 (1), 0.7 (1), 0.65 (0), 0.1 (0): the max-accuracy threshold is the
// midpoint 0.675. On the scored split itself it would be anything in (0, 0.6], accuracy 1.
PairDataset Fit() {
  PairDataset d;
  d.task = "fake";
  d.split = "train";
  d.binary = true;
  d.pairs = {Pair("f1", "x", "f1", 1), Pair("f2", "x", "f2", 1), Pair("f3", "x", "f3", 0),
             Pair("f4", "x", "f4", 0)};
  return d;
}

EvalOptions Options() {
  EvalOptions o;
  o.bootstrap = 200;
  o.seed = 3;
  return o;
}

TEST(Evaluator, MetricsMatchHandComputedValues) {
  FakeEmbedder f = MakeFake();
  const MethodResult r = EvaluateMethod(f, {{Scored()}, std::nullopt}, Options());
  ASSERT_EQ(r.splits.size(), 1u);
  const SplitResult& s = r.splits[0];
  EXPECT_EQ(s.n_pairs, 4);
  EXPECT_EQ(s.n_sentences, 5);  // "x" is embedded once
  ASSERT_EQ(s.layers.size(), 2u);
  for (const LayerResult& l : s.layers) {
    const std::vector<double> want = {1, 0.6, 0, -0.6};
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(l.cosines[i], want[i], 1e-6) << i;
    // Spearman: cosine ranks (4,3,2,1) vs tied label ranks (3.5,3.5,1.5,1.5) -> 4/(2 sqrt 5).
    EXPECT_NEAR(l.spearman, 4 / (2 * std::sqrt(5.0)), 1e-9);
    // Pearson: centred cosines (.75,.35,-.25,-.85) vs (.5,.5,-.5,-.5) -> 1.1 / sqrt(1.47).
    EXPECT_NEAR(l.pearson, 1.1 / std::sqrt(1.47), 1e-6);
    EXPECT_DOUBLE_EQ(l.roc_auc, 1.0);
    EXPECT_DOUBLE_EQ(l.ap, 1.0);
    EXPECT_FALSE(l.classification.has_value());  // no fitting split, no threshold
    EXPECT_EQ(l.undefined_cosines, 0);
    EXPECT_LE(l.spearman_ci.lo, l.spearman);
    EXPECT_GE(l.spearman_ci.hi, l.spearman);
    EXPECT_EQ(l.spearman_ci.resamples, 200);
  }
}

TEST(Evaluator, ThresholdComesFromTheFitSplitNotTheScoredOne) {
  FakeEmbedder f = MakeFake();
  const MethodResult r = EvaluateMethod(f, {{Scored()}, Fit()}, Options());
  const SplitResult& s = r.splits[0];
  EXPECT_EQ(s.threshold_pairs, 4);
  EXPECT_NE(s.threshold_source.find("fake train"), std::string::npos) << s.threshold_source;
  const LayerResult& l = s.layers[0];
  ASSERT_TRUE(l.classification.has_value());
  EXPECT_NEAR(l.classification->threshold, 0.675, 1e-6);
  EXPECT_DOUBLE_EQ(l.threshold_fit_accuracy, 1.0);
  // Scored cosines 1, .6, 0, -.6 at 0.675: TP 1, FN 1 (the 0.6 paraphrase), TN 2.
  EXPECT_DOUBLE_EQ(l.classification->accuracy, 0.75);
  EXPECT_DOUBLE_EQ(l.classification->precision, 1.0);
  EXPECT_DOUBLE_EQ(l.classification->recall, 0.5);
  EXPECT_NEAR(l.classification->f1, 2.0 / 3.0, 1e-12);
}

TEST(Evaluator, ScoredPairsAreRemovedFromTheFitSplit) {
  FakeEmbedder f = MakeFake();
  PairDataset fit = Fit();
  for (const SentencePair& p : Scored().pairs) fit.pairs.push_back(p);
  const MethodResult r = EvaluateMethod(f, {{Scored()}, fit}, Options());
  EXPECT_EQ(r.splits[0].threshold_pairs, 4);
  EXPECT_NE(r.splits[0].threshold_source.find("minus the 4 pairs scored here"), std::string::npos)
      << r.splits[0].threshold_source;
  EXPECT_NEAR(r.splits[0].layers[0].classification->threshold, 0.675, 1e-6);
  // Scoring the fitting split itself leaves nothing to fit on: no threshold, said plainly.
  const MethodResult self = EvaluateMethod(f, {{Fit()}, Fit()}, Options());
  EXPECT_FALSE(self.splits[0].layers[0].classification.has_value());
  EXPECT_NE(self.splits[0].threshold_source.find("none"), std::string::npos);
}

TEST(Evaluator, UndefinedCosinesAreCountedAndGetTheChosenValue) {
  FakeEmbedder f = MakeFake();
  PairDataset d = Scored();
  d.pairs[3].sentence2 = "zero";  // was cosine -0.6 (label 0)
  EvalOptions o = Options();
  o.undefined_cosine = 0.0;
  MethodResult r = EvaluateMethod(f, {{d}, std::nullopt}, o);
  EXPECT_EQ(r.splits[0].empty_sentences, 1);
  for (const LayerResult& l : r.splits[0].layers) {
    EXPECT_EQ(l.undefined_cosines, 1);
    EXPECT_EQ(l.cosines[3], 0.0);
    // Cosines 1, .6, 0, 0 -> ranks 4, 3, 1.5, 1.5 vs labels 3.5, 3.5, 1.5, 1.5: centred
    // (1.5, .5, -1, -1) . (1, 1, -1, -1) = 4, norms sqrt(4.5) and 2.
    EXPECT_NEAR(l.spearman, 4 / (2 * std::sqrt(4.5)), 1e-12);
  }
  o.undefined_cosine = 1.0;  // a different documented choice changes the score, visibly
  r = EvaluateMethod(f, {{d}, std::nullopt}, o);
  EXPECT_EQ(r.splits[0].layers[0].cosines[3], 1.0);
  EXPECT_LT(r.splits[0].layers[0].spearman, 0.5);
}

TEST(Evaluator, NonFiniteEmbeddingIsAnErrorNotAScore) {
  FakeEmbedder f = MakeFake();
  f.vectors["bad"] = {std::nanf(""), 1};
  PairDataset d = Scored();
  d.pairs[0].sentence2 = "bad";
  EXPECT_THROW(EvaluateMethod(f, {{d}, std::nullopt}, Options()), NumericError);
}

// Checked on every Embed result, for any embedder: a NaN in the fitting split stops the run there
// (before the scored split is embedded), naming the split, the pair and the layer.
TEST(Evaluator, NonFiniteEmbeddingStopsAtTheFirstSplitNamingThePair) {
  FakeEmbedder f = MakeFake();
  f.layer1["f3"] = {1, std::numeric_limits<float>::infinity()};
  try {
    EvaluateMethod(f, {{Scored()}, Fit()}, Options());
    FAIL() << "no error";
  } catch (const NonFiniteEmbeddingError& e) {
    const std::string what = e.what();
    // Distinct sentences of Fit(): x, f1, f2, f3, f4 -> f3 is sentence 3, sentence2 of pair 2.
    EXPECT_EQ(e.sentence(), 3);
    EXPECT_NE(what.find("sentence 3 of fake train (sentence2 of pair 2, id f3"), std::string::npos)
        << what;
    EXPECT_NE(what.find("layer 1 of fake"), std::string::npos) << what;
  }
  EXPECT_EQ(f.calls, 1);  // the scored split was never embedded
}

TEST(Evaluator, CheckEmbeddingsFiniteFindsTheFirstSentenceInAnyLayer) {
  EmbedResult r;
  r.layers = {4, 7};
  r.embeddings = {Matrix(3, 2), Matrix(3, 2)};
  r.empty.assign(3, 0);
  EXPECT_NO_THROW(CheckEmbeddingsFinite(r, "m"));
  r.embeddings[0].Row(2)[1] = std::nanf("");
  r.embeddings[1].Row(1)[0] = -std::numeric_limits<float>::infinity();
  try {
    CheckEmbeddingsFinite(r, "m");
    FAIL() << "no error";
  } catch (const NonFiniteEmbeddingError& e) {
    EXPECT_EQ(e.sentence(), 1);
    EXPECT_EQ(std::string(e.what()),
              "non-finite embedding (NaN or Inf) for sentence 1, layer 7 of m");
    EXPECT_EQ(std::string(e.Renamed(5, "sentence 5 (line 6)").what()),
              "non-finite embedding (NaN or Inf) for sentence 5 (line 6), layer 7 of m");
  }
}

TEST(Evaluator, BadInputsAreRejected) {
  FakeEmbedder f = MakeFake();
  EXPECT_THROW(EvaluateMethod(f, {{}, std::nullopt}, Options()), UsageError);
  PairDataset unlabelled = Scored();
  unlabelled.has_labels = false;
  EXPECT_THROW(EvaluateMethod(f, {{unlabelled}, std::nullopt}, Options()), DataError);
  EvalOptions o = Options();
  o.undefined_cosine = std::nan("");
  EXPECT_THROW(EvaluateMethod(f, {{Scored()}, std::nullopt}, o), UsageError);
}

TEST(Evaluator, SubsetSpreadMatchesSubsetPairs) {
  FakeEmbedder f = MakeFake();
  PairDataset fit = Fit();
  for (const SentencePair& p : Scored().pairs) fit.pairs.push_back(p);  // 8 pairs
  EvalOptions o = Options();
  o.subset_seeds = {0, 1, 2};
  o.subset_size = 5;
  const MethodResult r = EvaluateMethod(f, {{Scored()}, fit}, o);
  EXPECT_EQ(r.spread_split, "train-5");
  ASSERT_EQ(r.spread.size(), 2u);
  const std::map<std::string, double> cos = {{"f1", 0.9}, {"f2", 0.7}, {"f3", 0.65}, {"f4", 0.1},
                                             {"a1", 1},   {"a2", 0.6}, {"a3", 0},    {"a4", -0.6}};
  for (size_t k = 0; k < 3; ++k) {
    const PairDataset sub = SubsetPairs(fit, 5, k);
    std::vector<double> s, y;
    for (const SentencePair& p : sub.pairs) {
      s.push_back(cos.at(p.sentence2));
      y.push_back(p.label);
    }
    EXPECT_NEAR(r.spread[0].spearman[k], metrics::Spearman(s, y), 1e-6) << "seed " << k;
  }
  EXPECT_EQ(r.spread[0].summary.n, 3);
}

TEST(Evaluator, PairedComparisonsOfLayers) {
  FakeEmbedder f = MakeFake();
  f.layer1 = {{"a1", {1, 0}}, {"a3", {0, 1}}};  // layer 1 swaps two cosines: 0, .6, 1, -.6
  EvalOptions o = Options();
  const MethodResult r = EvaluateMethod(f, {{Scored()}, std::nullopt}, o);
  const metrics::ResampleOptions ro{200, 1, 0.95};
  const Comparison same = CompareLayers(r, 0, r, 0, "dev", "self", ro);
  EXPECT_DOUBLE_EQ(same.test.difference, 0.0);
  const Comparison c = CompareLayers(r, 0, r, 1, "dev", "adjacent", ro);
  EXPECT_NEAR(c.test.estimate_a, r.splits[0].layers[0].spearman, 1e-12);
  EXPECT_NEAR(c.test.estimate_b, r.splits[0].layers[1].spearman, 1e-12);
  EXPECT_GT(c.test.difference, 0);
  const std::vector<Comparison> all = StandardComparisons(r, {}, nullptr, ro);
  ASSERT_EQ(all.size(), 2u);  // 0 vs 1 (adjacent) and the worse layer vs the best
  EXPECT_EQ(all[0].kind, "adjacent");
  EXPECT_EQ(all[1].kind, "vs_best");
  EXPECT_EQ(all[1].layer_b, 0);
  EXPECT_THROW(CompareLayers(r, 0, r, 7, "dev", "x", ro), UsageError);
}

TEST(Resources, PeakRssIsReadAndResettable) {
  const int64_t peak = PeakRssKib();
  ASSERT_GT(peak, 0) << "VmHWM missing from /proc/self/status";
  {
    std::vector<char> big(64 << 20, 1);  // touch 64 MiB
    EXPECT_GE(PeakRssKib(), peak + (60 << 10));
  }
  if (!ResetPeakRss()) GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
  // The 64 MiB peak is forgotten: the high-water mark restarts from the current resident size.
  // (Compared with the current size, not the old peak: under AddressSanitizer freed memory stays
  // resident in its quarantine.)
  EXPECT_LT(PeakRssKib(), CurrentRssKib() + (8 << 10));
}

}  // namespace
}  // namespace rwkv_embed::eval
