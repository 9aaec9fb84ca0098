// Pooling beyond the mean (src/methods/): estimators on synthetic data with known answers
// (eigendecomposition, PCA of a rank-k set, whitening, all-but-the-top), hand-written gradients
// against finite differences, fitting that never touches the embedded (scored) sentences, and,
// on the shared tiny model, state embeddings = Forward's state taps, prompt token positions and
// echo pooling = the mean over the second copy computed by hand, attention with q = 0 = mean.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "methods/attention_pooling.h"
#include "methods/layer_fusion.h"
#include "methods/linalg.h"
#include "methods/method_spec.h"
#include "methods/post_processing.h"
#include "methods/prompt_embedder.h"
#include "methods/state_embedder.h"
#include "methods/training.h"
#include "model/rwkv_embedder.h"
#include "test_util.h"

namespace rwkv_embed::methods {
namespace {

std::vector<const float*> RowPointers(const Matrix& m) {
  std::vector<const float*> rows;
  for (int64_t i = 0; i < m.rows(); ++i) rows.push_back(m.Row(i));
  return rows;
}

// n rows in d dims: offset + sum_j c_ij * scale_j * u_j with orthonormal u_j (j < k) and
// standard normal c.
Matrix RankK(int64_t n, int64_t d, int64_t k, uint64_t seed, std::vector<std::vector<double>>* u) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  // Orthonormal directions by Gram-Schmidt on random vectors.
  u->assign(k, std::vector<double>(d));
  for (int64_t j = 0; j < k; ++j) {
    for (double& x : (*u)[j]) x = g(rng);
    for (int64_t i = 0; i < j; ++i) {
      double dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += (*u)[j][c] * (*u)[i][c];
      for (int64_t c = 0; c < d; ++c) (*u)[j][c] -= dot * (*u)[i][c];
    }
    double norm = 0;
    for (double x : (*u)[j]) norm += x * x;
    for (double& x : (*u)[j]) x /= std::sqrt(norm);
  }
  Matrix m(n, d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const double c = g(rng) * (k - j + 1.0);  // distinct variances
      for (int64_t col = 0; col < d; ++col) m.Row(i)[col] += static_cast<float>(c * (*u)[j][col]);
    }
    for (int64_t col = 0; col < d; ++col) m.Row(i)[col] += 3.0f + 0.1f * col;  // a mean offset
  }
  return m;
}

// |projection of u onto the span of the rows of `dirs`| (1 when u lies in the span).
double InSpan(const std::vector<double>& u, const std::vector<double>& dirs, int64_t d) {
  double s = 0;
  for (size_t r = 0; r * d < dirs.size(); ++r) {
    double dot = 0;
    for (int64_t c = 0; c < d; ++c) dot += u[c] * dirs[r * d + c];
    s += dot * dot;
  }
  return std::sqrt(s);
}

TEST(LinalgTest, EigenSymmetricSatisfiesTheDefinition) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> g;
  for (int64_t n : {1, 2, 7, 40}) {
    std::vector<double> a(n * n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j <= i; ++j) a[i * n + j] = a[j * n + i] = g(rng);
    }
    const SymmetricEigen e = EigenSymmetric(a, n);
    for (int64_t i = 0; i < n; ++i) {
      if (i > 0) {
        EXPECT_GE(e.values[i - 1], e.values[i]);
      }
      for (int64_t r = 0; r < n; ++r) {  // (A v)_r = lambda v_r
        double av = 0;
        for (int64_t c = 0; c < n; ++c) av += a[r * n + c] * e.vectors[i * n + c];
        EXPECT_NEAR(av, e.values[i] * e.vectors[i * n + r], 1e-10) << "n " << n;
      }
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < n; ++c) dot += e.vectors[i * n + c] * e.vectors[j * n + c];
        EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-10);
      }
    }
  }
  // A known spectrum: diag(1, 5, 3) -> 5, 3, 1.
  const SymmetricEigen d = EigenSymmetric(std::vector<double>{1, 0, 0, 0, 5, 0, 0, 0, 3}, 3);
  EXPECT_NEAR(d.values[0], 5, 1e-14);
  EXPECT_NEAR(d.values[1], 3, 1e-14);
  EXPECT_NEAR(d.values[2], 1, 1e-14);
}

TEST(LinalgTest, PrincipalComponentsOfARankKSetSpanItExactly) {
  // Covariance (d <= n), randomized (d > n, small k) and Gram (d > n, large k) paths.
  struct Case {
    int64_t n, d, k, ask;
  };
  for (const Case c : {Case{200, 20, 3, 5}, Case{100, 3000, 4, 6}, Case{50, 300, 3, 40}}) {
    std::vector<std::vector<double>> u;
    const Matrix x = RankK(c.n, c.d, c.k, 7, &u);
    const PrincipalComponents pc = FitPrincipalComponents(RowPointers(x), c.d, c.ask);
    ASSERT_EQ(pc.variances.size(), static_cast<size_t>(c.k)) << "rank-k: only k directions";
    for (int64_t j = 0; j < c.k; ++j) {
      EXPECT_NEAR(InSpan(u[j], pc.directions, c.d), 1.0, 1e-6) << "d " << c.d << " dir " << j;
    }
    // The mean is the rows' mean.
    double mean0 = 0;
    for (int64_t i = 0; i < c.n; ++i) mean0 += x.Row(i)[0];
    EXPECT_NEAR(pc.mean[0], mean0 / c.n, 1e-9);
  }
}

TEST(PostProcessingTest, WhiteningGivesIdentityCovarianceOnTheFittedRows) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> g;
  const int64_t n = 400, d = 6;
  Matrix x(n, d);
  for (int64_t i = 0; i < n; ++i) {
    const double a = g(rng), b = g(rng), c = g(rng);  // + 3 more sources: full rank
    const double v[6] = {a,     2 * a + 0.1 * b + 0.05 * g(rng), b - c,
                         5 * c, a + b + c + 0.01 * g(rng),       7 + g(rng)};
    for (int64_t k = 0; k < d; ++k) x.Row(i)[k] = static_cast<float>(v[k]);
  }
  const FittedTransform t = FitTransform(ParsePostSpec("whiten"), RowPointers(x), d);
  Matrix y(n, d);
  for (int64_t i = 0; i < n; ++i) t.Apply(x.Row(i), y.Row(i));
  for (int64_t a = 0; a < d; ++a) {
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += y.Row(i)[a];
    EXPECT_NEAR(mean / n, 0.0, 1e-5);
    for (int64_t b = 0; b < d; ++b) {
      double cov = 0;
      for (int64_t i = 0; i < n; ++i) cov += static_cast<double>(y.Row(i)[a]) * y.Row(i)[b];
      EXPECT_NEAR(cov / n, a == b ? 1.0 : 0.0, 2e-4) << a << "," << b;
    }
  }
  // Too few rows for the dimension: a clear error, not a singular whitening.
  EXPECT_THROW(FitTransform(ParsePostSpec("whiten"), {x.Row(0), x.Row(1), x.Row(2)}, d),
               UsageError);
}

TEST(PostProcessingTest, AllButTheTopRemovesTheMeanAndTheTopDirections) {
  std::vector<std::vector<double>> u;
  const int64_t n = 300, d = 12;
  Matrix x = RankK(n, d, 2, 11, &u);  // two dominant directions ...
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < d; ++c) x.Row(i)[c] += static_cast<float>(0.01 * g(rng));  // + noise
  }
  const FittedTransform t = FitTransform(ParsePostSpec("abtt2"), RowPointers(x), d);
  ASSERT_EQ(t.removed.rows(), 2);
  // The removed directions are the planted ones (up to the noise).
  std::vector<double> removed(t.removed.Flat().begin(), t.removed.Flat().end());
  for (int j = 0; j < 2; ++j) EXPECT_NEAR(InSpan(u[j], removed, d), 1.0, 1e-3);
  // y = (x - mean) - sum_j (u_j . (x - mean)) u_j, by hand, for a new vector.
  std::vector<float> v(d), y(d);
  for (int64_t c = 0; c < d; ++c) v[c] = static_cast<float>(g(rng));
  t.Apply(v.data(), y.data());
  std::vector<double> expect(d);
  for (int64_t c = 0; c < d; ++c) expect[c] = v[c] - t.mean[c];
  for (int64_t r = 0; r < 2; ++r) {
    double dot = 0;
    for (int64_t c = 0; c < d; ++c) dot += t.removed.Row(r)[c] * expect[c];
    for (int64_t c = 0; c < d; ++c) expect[c] -= dot * t.removed.Row(r)[c];
  }
  for (int64_t c = 0; c < d; ++c) EXPECT_NEAR(y[c], expect[c], 1e-5);
  for (int64_t r = 0; r < 2; ++r) {  // nothing left along a removed direction
    double dot = 0;
    for (int64_t c = 0; c < d; ++c) dot += t.removed.Row(r)[c] * y[c];
    EXPECT_NEAR(dot, 0.0, 1e-5);
  }
  // Default D = round(dim / 100), at least 1.
  EXPECT_EQ(FitTransform(ParsePostSpec("abtt"), RowPointers(x), d).removed.rows(), 1);
  EXPECT_THROW(ParsePostSpec("abtt0"), UsageError);
  EXPECT_THROW(ParsePostSpec("pcax"), UsageError);
  EXPECT_THROW(ParsePostSpec("whitening"), UsageError);
}

// An embedder over a fixed table sentence -> layer vectors; records every sentence it embeds.
class TableEmbedder : public Embedder {
 public:
  explicit TableEmbedder(std::map<std::string, std::vector<std::vector<float>>> table)
      : table_(std::move(table)) {}
  std::string Name() const override { return "table"; }
  std::string Description() const override { return "test table"; }
  int64_t Dim() const override { return static_cast<int64_t>(table_.begin()->second[0].size()); }
  std::vector<int> Layers() const override {
    std::vector<int> l;
    for (size_t i = 0; i < table_.begin()->second.size(); ++i) l.push_back(static_cast<int>(i));
    return l;
  }
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override {
    EmbedResult r;
    r.layers = request.layers.empty() ? Layers() : request.layers;
    r.empty.assign(sentences.size(), 0);
    for (int l : r.layers) {
      Matrix m(static_cast<int64_t>(sentences.size()), Dim());
      for (size_t i = 0; i < sentences.size(); ++i) {
        const std::vector<float>& v = table_.at(sentences[i])[l];
        std::copy(v.begin(), v.end(), m.Row(static_cast<int64_t>(i)));
      }
      r.embeddings.push_back(std::move(m));
    }
    for (const std::string& s : sentences) seen.push_back(s);
    return r;
  }
  std::vector<std::string> seen;

 private:
  std::map<std::string, std::vector<std::vector<float>>> table_;
};

TEST(PostProcessingTest, FitsOnTheFitSentencesOnlyAndEmbedNeverRefits) {
  std::map<std::string, std::vector<std::vector<float>>> table;
  std::mt19937_64 rng(2);
  std::normal_distribution<float> g;
  FitData fit;
  for (int i = 0; i < 40; ++i) {
    const std::string s = (i < 30 ? "fit " : "scored ") + std::to_string(i);
    table[s] = {{g(rng) + 10, g(rng), g(rng) - 4}, {g(rng), g(rng), g(rng)}};
    if (i < 30) fit.sentences.push_back(s);
  }
  fit.source = "test fit";
  auto inner = std::make_shared<TableEmbedder>(table);
  for (const char* post : {"center", "whiten", "abtt1", "pca2"}) {
    PostProcessedEmbedder e(inner, ParsePostSpec(post));
    EXPECT_THROW(e.Embed(std::vector<std::string>{"scored 30"}, {}), UsageError) << "before Fit";
    inner->seen.clear();
    e.Fit(fit, {});
    EXPECT_EQ(inner->seen, fit.sentences) << post << ": Fit embeds the fit sentences only";
    // The fitted mean is the fit rows' mean (layer 0, dim 0), not that of any scored row.
    double mean = 0;
    for (const std::string& s : fit.sentences) mean += table[s][0][0];
    EXPECT_NEAR(e.transform(0).mean[0], mean / 30, 1e-5) << post;
    // A scored sentence's vector does not depend on which other sentences are embedded with it:
    // a method that (re)fitted on the scored sentences would fail this.
    const std::vector<std::string> alone = {"scored 31"};
    const std::vector<std::string> with_others = {"scored 30", "scored 31", "scored 35",
                                                  "scored 39"};
    const EmbedResult a = e.Embed(alone, {});
    const EmbedResult b = e.Embed(with_others, {});
    for (size_t l = 0; l < a.layers.size(); ++l) {
      for (int64_t c = 0; c < a.embeddings[l].cols(); ++c) {
        EXPECT_EQ(a.embeddings[l].Row(0)[c], b.embeddings[l].Row(1)[c]) << post;
      }
    }
  }
  PostProcessedEmbedder centred(inner, ParsePostSpec("center"));
  centred.Fit(fit, {});
  EXPECT_NE(centred.FittedOn().find("test fit"), std::string::npos) << centred.FittedOn();
}

// d f / d x by central differences.
template <typename F>
std::vector<double> NumericGradient(F f, std::vector<double> x, double h = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double up = f(x);
    x[i] = x0 - h;
    const double down = f(x);
    x[i] = x0;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

TEST(TrainingTest, PearsonGradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> g;
  std::vector<double> c(20), y(20);
  for (size_t i = 0; i < c.size(); ++i) {
    c[i] = g(rng);
    y[i] = c[i] + g(rng);
  }
  std::vector<double> grad;
  PearsonWithGradient(c, y, &grad);
  const auto num = NumericGradient(
      [&](const std::vector<double>& x) { return PearsonWithGradient(x, y, nullptr); }, c);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(grad[i], num[i], 1e-7);
}

TEST(TrainingTest, FusionGradientMatchesFiniteDifferencesAndTrainingFindsTheInformativeLayer) {
  // Three layers; only layer 1 carries the label (cosine of the pair's vectors there tracks it).
  std::mt19937_64 rng(8);
  std::normal_distribution<float> g;
  const int n_pairs = 120, d = 5;
  EmbedResult r;
  r.layers = {0, 1, 2};
  for (int l = 0; l < 3; ++l) r.embeddings.emplace_back(2 * n_pairs, d);
  r.empty.assign(2 * n_pairs, 0);
  std::vector<std::pair<int, int>> pairs;
  std::vector<double> labels;
  for (int p = 0; p < n_pairs; ++p) {
    const double label = p % 2;
    for (int l = 0; l < 3; ++l) {
      for (int c = 0; c < d; ++c) {
        const float base = g(rng);
        r.embeddings[l].Row(2 * p)[c] = base;
        r.embeddings[l].Row(2 * p + 1)[c] =
            l == 1 && label == 1 ? base + 0.3f * g(rng) : g(rng);  // similar iff label 1
      }
    }
    pairs.emplace_back(2 * p, 2 * p + 1);
    labels.push_back(label);
  }
  const FusionPairs fp = BuildFusionPairs(r, pairs, labels);
  std::vector<int64_t> rows(n_pairs);
  for (int i = 0; i < n_pairs; ++i) rows[i] = i;
  const std::vector<double> theta = {0.3, -0.2, 0.5};
  std::vector<double> grad;
  FusionObjective(fp, theta, rows, &grad);
  const auto num = NumericGradient(
      [&](const std::vector<double>& t) { return FusionObjective(fp, t, rows, nullptr); }, theta);
  for (size_t i = 0; i < theta.size(); ++i) EXPECT_NEAR(grad[i], num[i], 1e-7);

  TrainOptions o;
  o.seed = 1;
  const PairSplit split = SplitPairs(n_pairs, o);
  EXPECT_EQ(split.train.size() + split.holdout.size(), static_cast<size_t>(n_pairs));
  const TrainResult t =
      TrainAscent([&](std::span<const double> th, std::span<const int64_t> rr,
                      std::vector<double>* gg) { return FusionObjective(fp, th, rr, gg); },
                  {0, 0, 0}, split, o);
  EXPECT_GT(t.theta[1], t.theta[0]);
  EXPECT_GT(t.theta[1], t.theta[2]);
  EXPECT_GT(t.holdout, t.start_holdout);
  // Seeded: the same run twice gives the same parameters.
  const TrainResult again =
      TrainAscent([&](std::span<const double> th, std::span<const int64_t> rr,
                      std::vector<double>* gg) { return FusionObjective(fp, th, rr, gg); },
                  {0, 0, 0}, SplitPairs(n_pairs, o), o);
  EXPECT_EQ(t.theta, again.theta);
}

TEST(TrainingTest, AttentionGradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(6);
  std::normal_distribution<float> g;
  TokenCache cache;
  cache.dim = 4;
  const int n_sent = 12;
  for (int i = 0; i < n_sent; ++i) {
    const int T = 1 + i % 5;
    for (int t = 0; t < T * cache.dim; ++t) cache.rows.push_back(g(rng) + (t % 4 == 0 ? 2 : 0));
    cache.offsets.push_back(cache.offsets.back() + T);
  }
  for (int64_t t = 0; t < cache.offsets.back(); ++t) {
    double s = 0;
    for (int c = 0; c < cache.dim; ++c) s += cache.rows[t * 4 + c] * cache.rows[t * 4 + c];
    cache.inv_norms.push_back(static_cast<float>(1 / std::sqrt(s)));
  }
  std::vector<std::pair<int, int>> pairs;
  std::vector<double> labels;
  for (int p = 0; p < 10; ++p) {
    pairs.emplace_back(p, (p * 5 + 3) % n_sent);
    labels.push_back((p * 7) % 4);
  }
  std::vector<int64_t> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<double> q = {0.4, -1.0, 0.7, 0.2};
  std::vector<double> grad;
  AttentionObjective(cache, pairs, labels, q, rows, &grad);
  const auto num = NumericGradient(
      [&](const std::vector<double>& x) {
        return AttentionObjective(cache, pairs, labels, x, rows, nullptr);
      },
      q);
  for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(grad[i], num[i], 1e-6) << i;
  // Weights: a distribution, uniform at q = 0.
  const std::vector<double> w = AttentionWeights(std::vector<double>(4, 0.0), cache.rows.data(),
                                                 cache.inv_norms.data(), 3, 4);
  for (double x : w) EXPECT_DOUBLE_EQ(x, 1.0 / 3);
}

// ---- on the shared tiny RWKV-6 model ----

std::shared_ptr<RwkvEmbedder> Tiny(int64_t batch_tokens = 2048) {
  const std::filesystem::path dir = testing::SharedFile("models/tiny-rwkv6-f32/model.safetensors");
  if (dir.empty()) return nullptr;
  RwkvEmbedderOptions o;
  o.batch_tokens = batch_tokens;
  return RwkvEmbedder::Load(dir.parent_path(), {}, o);
}

const std::vector<std::string> kTexts = {"The cat sat on the mat.", "",
                                         "Stocks fell sharply on Monday after the report.",
                                         "A man is playing a guitar."};

TEST(StateEmbedderTest, EqualsTheForwardStateTapsForEveryPart) {
  auto model = Tiny(7);  // small batches: long sentences carry their state across batches
  if (!model) GTEST_SKIP() << "shared tiny model absent";
  const auto ids = model->Tokenize(kTexts);
  for (StatePart part : {StatePart::kWkv, StatePart::kShift, StatePart::kAll}) {
    StateEmbedder e(model, part);
    const EmbedResult r = e.Embed(kTexts, {});
    ASSERT_EQ(r.layers, (std::vector<int>{1, 2}));
    EXPECT_EQ(r.empty, (std::vector<uint8_t>{0, 1, 0, 0}));
    for (size_t i = 0; i < kTexts.size(); ++i) {
      if (ids[i].empty()) continue;
      TokenBatch batch;
      batch.Add(ids[i]);
      ForwardOptions fo;
      fo.return_states = true;
      const ForwardResult f = model->model().Forward(batch, fo);
      for (int k = 1; k <= 2; ++k) {
        const BlockState& s = f.states[0][k - 1];
        std::vector<float> expect;
        if (part != StatePart::kShift) expect.insert(expect.end(), s.wkv.begin(), s.wkv.end());
        if (part != StatePart::kWkv) {
          expect.insert(expect.end(), s.time_shift.begin(), s.time_shift.end());
          expect.insert(expect.end(), s.channel_shift.begin(), s.channel_shift.end());
        }
        ASSERT_EQ(static_cast<int64_t>(expect.size()), e.Dim());
        const auto got = r.embeddings[k - 1].RowSpan(static_cast<int64_t>(i));
        const auto rep = testing::CompareClose(got, expect, 1e-6, 1e-5);
        EXPECT_EQ(rep.violations, 0u)
            << StatePartName(part) << " text " << i << " block " << k << ": " << rep.Describe();
      }
    }
  }
}

TEST(PromptEmbedderTest, TokenPositionsAndEchoPoolingEqualTheHandComputedMean) {
  auto model = Tiny();
  if (!model) GTEST_SKIP() << "shared tiny model absent";
  const PromptTemplate echo = FindPromptTemplate("echo");
  const PromptTemplate eol = FindPromptTemplate("prompteol");
  EXPECT_FALSE(echo.pool_last);
  EXPECT_EQ(echo.copy, 2);
  EXPECT_TRUE(eol.pool_last);
  PromptEmbedder echo_e(model, echo), eol_e(model, eol);
  const std::vector<int32_t> text = model->tokenizer().Encode("A man is playing a guitar.");
  const std::vector<int32_t> head = model->tokenizer().Encode("Rewrite the sentence: ");
  const std::vector<int32_t> mid = model->tokenizer().Encode(", rewritten sentence: ");
  const PromptTokens p = echo_e.Build(text);
  std::vector<int32_t> expect_ids = head;
  expect_ids.insert(expect_ids.end(), text.begin(), text.end());
  expect_ids.insert(expect_ids.end(), mid.begin(), mid.end());
  const int64_t second = static_cast<int64_t>(expect_ids.size());
  expect_ids.insert(expect_ids.end(), text.begin(), text.end());
  EXPECT_EQ(p.ids, expect_ids);
  ASSERT_EQ(p.positions.size(), text.size());
  for (size_t t = 0; t < text.size(); ++t)
    EXPECT_EQ(p.positions[t], second + static_cast<int64_t>(t));
  const PromptTokens e = eol_e.Build(text);
  EXPECT_EQ(e.positions, (std::vector<int64_t>{static_cast<int64_t>(e.ids.size()) - 1}));
  EXPECT_EQ(model->tokenizer().Decode(e.ids),
            "This sentence : \"A man is playing a guitar.\" means in one word:\"");

  // Echo pooling = the mean over the second copy's hidden states, by hand from Forward.
  const int layer = 2;
  TokenBatch batch;
  batch.Add(p.ids);
  ForwardOptions fo;
  fo.layers = {layer};
  std::vector<double> mean(model->Dim(), 0.0), last(model->Dim(), 0.0);
  model->model().Forward(batch, fo, [&](int, const Matrix& h) {
    for (int64_t pos : p.positions) {
      for (int64_t c = 0; c < h.cols(); ++c)
        mean[c] += h.Row(pos)[c] / static_cast<double>(text.size());
    }
  });
  EmbedRequest req;
  req.layers = {layer};
  const std::vector<std::string> one = {"A man is playing a guitar.", ""};
  const EmbedResult r = echo_e.Embed(one, req);
  for (int64_t c = 0; c < model->Dim(); ++c) EXPECT_NEAR(r.embeddings[0].Row(0)[c], mean[c], 1e-5);
  EXPECT_EQ(r.empty, (std::vector<uint8_t>{0, 1}));  // the empty text: a flagged zero row
  // PromptEOL = the hidden state of the prompt's last token.
  TokenBatch eb;
  eb.Add(e.ids);
  model->model().Forward(eb, fo, [&](int, const Matrix& h) {
    for (int64_t c = 0; c < h.cols(); ++c) last[c] = h.Row(h.rows() - 1)[c];
  });
  const EmbedResult er = eol_e.Embed(one, req);
  for (int64_t c = 0; c < model->Dim(); ++c) EXPECT_NEAR(er.embeddings[0].Row(0)[c], last[c], 1e-5);
}

TEST(PromptEmbedderTest, TemplateFilesAreCheckedFieldByField) {
  const std::filesystem::path dir = testing::TempDir();
  auto write = [&](const std::string& body) {
    const std::filesystem::path p = dir / "t.json";
    std::ofstream(p) << body;
    return p;
  };
  auto message = [](const std::filesystem::path& p) {
    try {
      LoadPromptTemplates(p);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      message(write(R"({"templates":[{"name":"x","template":"no placeholder","pool":"last"}]})"))
          .find("'template' has no {text}"),
      std::string::npos);
  EXPECT_NE(message(write(R"({"templates":[{"name":"x","template":"{text}","pool":"first"}]})"))
                .find("'pool'"),
            std::string::npos);
  EXPECT_NE(
      message(write(R"({"templates":[{"name":"x","template":"{text}","pool":"copy","copy":2}]})"))
          .find("'copy' = 2"),
      std::string::npos);
  EXPECT_NE(message(write("{not json")).find("not valid JSON"), std::string::npos);
  // A user template, by file and by name.
  const auto p = write(
      R"({"templates":[{"name":"twice","template":"{text} again: {text}","pool":"copy","copy":2}]})");
  EXPECT_EQ(FindPromptTemplate(p.string()).name, "twice");
  EXPECT_EQ(FindPromptTemplate("twice", p).copy, 2);
  EXPECT_THROW(FindPromptTemplate("nonesuch"), UsageError);
}

TEST(AttentionPoolingTest, ZeroQueryIsMeanPoolingAndPiecesEqualOnePass) {
  auto model = Tiny(5);  // sentences split across batches: the online softmax must carry
  if (!model) GTEST_SKIP() << "shared tiny model absent";
  AttentionPoolEmbedder att(model);
  EXPECT_THROW(att.Embed(kTexts, {}), UsageError);  // not fitted
  for (int l : model->Layers()) att.SetQuery(l, std::vector<double>(model->Dim(), 0.0));
  const EmbedResult a = att.Embed(kTexts, {});
  const EmbedResult m = model->Embed(kTexts, {});
  for (size_t l = 0; l < a.layers.size(); ++l) {
    const auto rep =
        testing::CompareClose(a.embeddings[l].Flat(), m.embeddings[l].Flat(), 1e-5, 1e-5);
    EXPECT_EQ(rep.violations, 0u) << rep.Describe();
  }
  // A non-zero query: pieces of 5 tokens equal one pass, and token weights are a distribution.
  std::mt19937_64 rng(9);
  std::normal_distribution<double> g;
  auto whole = Tiny(1 << 20);
  AttentionPoolEmbedder att1(whole);
  for (int l : model->Layers()) {
    std::vector<double> q(model->Dim());
    for (double& x : q) x = 3 * g(rng);
    att.SetQuery(l, q);
    att1.SetQuery(l, q);
  }
  const EmbedResult x = att.Embed(kTexts, {}), y = att1.Embed(kTexts, {});
  for (size_t l = 0; l < x.layers.size(); ++l) {
    const auto rep =
        testing::CompareClose(x.embeddings[l].Flat(), y.embeddings[l].Flat(), 1e-5, 1e-5);
    EXPECT_EQ(rep.violations, 0u) << rep.Describe();
  }
  const auto tw = att.TokenWeights(kTexts[0], 3);
  double sum = 0;
  std::string joined;
  for (const TokenWeight& w : tw) {
    sum += w.weight;
    joined += w.token;
  }
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_EQ(joined, kTexts[0]);
}

TEST(MethodSpecTest, SpecsBuildTheNamedChains) {
  auto model = Tiny();
  if (!model) GTEST_SKIP() << "shared tiny model absent";
  MethodContext c;
  c.model = model;
  EXPECT_EQ(MakePoolingMethod("state-wkv+pca8", c)->Name(), "state-wkv+pca8");
  EXPECT_EQ(MakePoolingMethod("fusion-mean", c)->Name(), "rwkv+fusion-mean");
  EXPECT_EQ(MakePoolingMethod("echo+whiten", c)->Name(), "prompt:echo+whiten");
  EXPECT_EQ(MakePoolingMethod("state-shift", c)->Dim(), 2 * model->Dim());
  EXPECT_THROW(MakePoolingMethod("state-kv", c), UsageError);
  EXPECT_THROW(MakePoolingMethod("median", c), UsageError);
  EXPECT_THROW(MakePoolingMethod("mean+blur", c), UsageError);
  EXPECT_TRUE(IsFittedMethod("state-wkv+pca8"));
  EXPECT_FALSE(IsFittedMethod("echo"));
  EXPECT_EQ(ParsePoolingList("echo,mean+abtt"), (std::vector<std::string>{"echo", "mean+abtt"}));
  EXPECT_THROW(ParsePoolingList("echo,,x"), UsageError);
  // Fusion of concat: dimension = layers x C; mean fusion of the L2-normalised layers by hand.
  auto concat = MakePoolingMethod("fusion-concat", c);
  EXPECT_EQ(concat->Dim(), 4 * model->Dim());
  auto fmean = MakePoolingMethod("fusion-mean", c);
  const EmbedResult f = fmean->Embed(kTexts, {});
  const EmbedResult m = model->Embed(kTexts, {});
  std::vector<double> expect(model->Dim(), 0.0);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    double norm = 0;
    for (int64_t k = 0; k < model->Dim(); ++k) norm += std::pow(m.embeddings[l].Row(0)[k], 2);
    for (int64_t k = 0; k < model->Dim(); ++k) {
      expect[k] += m.embeddings[l].Row(0)[k] / std::sqrt(norm) / 4;
    }
  }
  for (int64_t k = 0; k < model->Dim(); ++k)
    EXPECT_NEAR(f.embeddings[0].Row(0)[k], expect[k], 1e-6);
}

}  // namespace
}  // namespace rwkv_embed::methods
