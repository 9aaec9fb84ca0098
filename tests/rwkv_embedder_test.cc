// RwkvEmbedder on the shared tiny models: texts longer than a batch (split across batches with the
// recurrent state carried) embed exactly as in one pass, batches are filled to the token budget,
// and a NaN/Inf stops Embed at the first bad batch with the sentence, layer and weight named.
#include "model/rwkv_embedder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/rwkv6/rwkv6_weights.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

// Deterministic texts of about 5..200 tokens (plus one empty sentence), varied in length.
std::vector<std::string> MixedTexts() {
  const char* words[] = {"the",     "recurrent", "state",  "carries", "across",
                         "batches", "Finch",     "embeds", "every",   "layer",
                         "of",      "sentences", "while",  "memory",  "stays",
                         "bounded", "by",        "tokens", "pooled",  "exactly"};
  std::vector<std::string> texts;
  uint32_t x = 12345;
  for (int i = 0; i < 30; ++i) {
    const int n_words = i % 7 == 0 ? 150 : 3 + (i * 37) % 60;
    std::string t;
    for (int w = 0; w < n_words; ++w) {
      x = x * 1664525u + 1013904223u;
      t += (w ? " " : "") + std::string(words[(x >> 16) % 20]);
    }
    texts.push_back(t + ".");
    if (i == 11) texts.emplace_back();  // nothing to embed: a zero row, flagged
  }
  return texts;
}

std::unique_ptr<RwkvEmbedder> LoadTiny(const std::filesystem::path& dir, int64_t batch_tokens,
                                       kernels::MatMulPrecision precision) {
  RwkvEmbedderOptions o;
  o.batch_tokens = batch_tokens;
  o.precision = precision;
  return RwkvEmbedder::Load(dir, {}, o);
}

void ExpectBitIdentical(const EmbedResult& got, const EmbedResult& ref, const std::string& what) {
  ASSERT_EQ(got.layers, ref.layers) << what;
  EXPECT_EQ(got.empty, ref.empty) << what;
  EXPECT_EQ(got.tokens, ref.tokens) << what;
  for (size_t l = 0; l < ref.embeddings.size(); ++l) {
    const auto a = got.embeddings[l].Flat(), b = ref.embeddings[l].Flat();
    ASSERT_EQ(a.size(), b.size());
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      differ += std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i]);
    }
    EXPECT_EQ(differ, 0u) << what << " layer " << ref.layers[l] << ": " << differ << " of "
                          << a.size() << " values differ";
  }
}

TEST(RwkvEmbedderTest, TextsLongerThanABatchEqualOnePassForEveryPooling) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const auto texts = MixedTexts();
  const auto f32 = kernels::MatMulPrecision::kF32;
  auto one_pass = LoadTiny(model.parent_path(), int64_t{1} << 30, f32);
  // The premise: texts from a few tokens to far more than a 16-token batch (and one empty).
  int64_t shortest = INT64_MAX, longest = 0;
  for (const auto& t : texts) {
    const auto n = static_cast<int64_t>(one_pass->tokenizer().Encode(t).size());
    if (n > 0) shortest = std::min(shortest, n);
    longest = std::max(longest, n);
  }
  EXPECT_LE(shortest, 8);
  EXPECT_GE(longest, 150);
  std::cout << "texts of " << shortest << ".." << longest << " tokens\n";
  for (const std::string& name : PoolingNames()) {
    EmbedRequest request;  // every layer
    request.pooling = ParsePooling(name);
    const EmbedResult ref = one_pass->Embed(texts, request);
    for (const int64_t budget : {16, 57}) {
      auto chunked = LoadTiny(model.parent_path(), budget, f32);
      ExpectBitIdentical(chunked->Embed(texts, request), ref,
                         name + " at batch_tokens " + std::to_string(budget));
    }
    // Every token its own batch, every state carried: on fewer texts (thousands of calls).
    const std::span<const std::string> few(texts.data(), 3);
    ExpectBitIdentical(LoadTiny(model.parent_path(), 1, f32)->Embed(few, request),
                       one_pass->Embed(few, request), name + " at batch_tokens 1");
  }
  EmbedRequest l2;
  l2.pooling = Pooling::kWeightedMean;
  l2.normalization = Normalization::kL2;
  l2.layers = {3, 1};
  ExpectBitIdentical(LoadTiny(model.parent_path(), 16, f32)->Embed(texts, l2),
                     one_pass->Embed(texts, l2), "weighted-mean, l2, layers 3,1");
}

TEST(RwkvEmbedderTest, Bf16MatmulsAlsoEqualOnePass) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto texts = MixedTexts();
  const auto bf16 = kernels::MatMulPrecision::kBF16;
  EmbedRequest request;
  request.pooling = Pooling::kMean;
  ExpectBitIdentical(LoadTiny(model.parent_path(), 16, bf16)->Embed(texts, request),
                     LoadTiny(model.parent_path(), int64_t{1} << 30, bf16)->Embed(texts, request),
                     "bf16 mean at batch_tokens 16");
}

// The token tap sees every position of every sentence exactly once, in order, whatever the batch
// budget: the rows tapped at budget 16 (sentences cut across batches) equal those of one pass,
// and their mean is the mean-pooled embedding.
TEST(RwkvEmbedderTest, TokenTapDeliversEveryPositionOnceInOrder) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const auto texts = MixedTexts();
  const auto f32 = kernels::MatMulPrecision::kF32;
  using Rows = std::vector<std::vector<float>>;  // [sentence] -> flattened [T, C] of one layer
  const auto tapped = [&](int64_t budget, EmbedResult* pooled) {
    auto e = LoadTiny(model.parent_path(), budget, f32);
    const int64_t C = e->Dim();
    const auto ids = e->Tokenize(texts);
    Rows rows(texts.size());
    TokenEmbedOptions opts;
    opts.token_tap = [&](int64_t sentence, int layer, int64_t first, const float* h, int64_t T) {
      ASSERT_EQ(layer, 2);
      auto& r = rows[sentence];
      ASSERT_EQ(static_cast<int64_t>(r.size()), first * C) << "sentence " << sentence;
      r.insert(r.end(), h, h + T * C);
    };
    EmbedRequest request;
    request.layers = {2};
    *pooled = e->EmbedTokens(ids, request, opts);
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(rows[i].size(), ids[i].size() * C) << "sentence " << i;
    }
    return rows;
  };
  EmbedResult one, cut;
  const Rows ref = tapped(int64_t{1} << 30, &one), got = tapped(16, &cut);
  EXPECT_EQ(got, ref);
  const int64_t C = one.embeddings[0].cols();
  for (size_t i = 0; i < texts.size(); ++i) {
    if (ref[i].empty()) continue;
    const int64_t T = static_cast<int64_t>(ref[i].size()) / C;
    std::vector<float> mean(C);
    Pool(Pooling::kMean, ref[i].data(), T, C, C, mean.data());
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(mean[c], one.embeddings[0].Row(i)[c]) << i;
  }
}

// RWKV-7 behind the same embedder: pieces carried across batches (the value residual v_first is
// per token, so only the three state pieces cross a batch boundary) equal one pass, in both
// namings, and the weight named for a NaN is the first in forward order in fla naming too.
TEST(RwkvEmbedderTest, Rwkv7TextsLongerThanABatchEqualOnePass) {
  for (const char* folder : {"models/tiny-rwkv7-f32", "models/tiny-rwkv7-bf16"}) {
    RWKV_EMBED_REQUIRE_SHARED(model, std::string(folder) + "/model.safetensors");
    const auto texts = MixedTexts();
    const auto f32 = kernels::MatMulPrecision::kF32;
    auto one_pass = LoadTiny(model.parent_path(), int64_t{1} << 30, f32);
    ASSERT_EQ(one_pass->model().Architecture(), "rwkv7");
    for (const char* pooling : {"mean", "max", "last", "weighted-mean"}) {
      EmbedRequest request;
      request.pooling = ParsePooling(pooling);
      ExpectBitIdentical(LoadTiny(model.parent_path(), 23, f32)->Embed(texts, request),
                         one_pass->Embed(texts, request),
                         std::string(folder) + " " + pooling + " at batch_tokens 23");
    }
  }
}

TEST(RwkvEmbedderTest, Rwkv7FirstNonFiniteWeightIsInForwardOrder) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv7-f32/model.safetensors");
  const float inf = std::numeric_limits<float>::infinity();
  const auto tmp = testing::TempDir();
  auto dir = testing::PoisonedModelCopy(model.parent_path(), tmp / "a", "lm_head.weight", 3, inf);
  dir = testing::PoisonedModelCopy(dir, tmp / "b", "model.layers.1.ffn.value.weight", 7, inf);
  auto e = LoadTiny(dir, 64, kernels::MatMulPrecision::kF32);
  const auto first = e->model().FindNonFiniteWeight();
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(first->find("tensor 'model.layers.1.ffn.value.weight'"), std::string::npos) << *first;
  EmbedRequest request;
  request.layers = {3};
  try {
    e->Embed(MixedTexts(), request);
    ADD_FAILURE() << "an Inf weight gave finite embeddings";
  } catch (const NumericError& err) {
    EXPECT_NE(std::string(err.what()).find("model.layers.1.ffn.value.weight"), std::string::npos)
        << err.what();
  }
}

TEST(RwkvEmbedderTest, EveryBatchIsFilledToTheTokenBudget) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const auto texts = MixedTexts();
  auto e = LoadTiny(model.parent_path(), 16, kernels::MatMulPrecision::kF32);
  std::vector<int64_t> batch_tokens, done;
  int64_t last_tokens = 0;
  e->options().progress = [&](int64_t sentences, int64_t total, int64_t tokens) {
    EXPECT_EQ(total, static_cast<int64_t>(texts.size()));
    batch_tokens.push_back(tokens - last_tokens);
    last_tokens = tokens;
    done.push_back(sentences);
  };
  EmbedRequest request;
  request.layers = {3};
  const EmbedResult r = e->Embed(texts, request);
  ASSERT_FALSE(batch_tokens.empty());
  EXPECT_EQ(last_tokens, r.tokens);
  EXPECT_EQ(static_cast<int64_t>(batch_tokens.size()), (r.tokens + 15) / 16);
  for (size_t b = 0; b + 1 < batch_tokens.size(); ++b) EXPECT_EQ(batch_tokens[b], 16) << b;
  EXPECT_GE(batch_tokens.back(), 1);
  EXPECT_TRUE(std::is_sorted(done.begin(), done.end()));
  EXPECT_EQ(done.back(), static_cast<int64_t>(texts.size()));
  EXPECT_EQ(r.empty[12], 1);
}

// The two Forward options the carrying relies on: states returned only for the sequences asked,
// and an empty initial state meaning zeros.
TEST(RwkvEmbedderTest, ForwardReturnsOnlyTheAskedStatesAndEmptyMeansZeros) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  auto e = LoadTiny(model.parent_path(), 16, kernels::MatMulPrecision::kF32);
  const SequenceModel& m = e->model();
  TokenBatch batch;
  batch.Add(e->tokenizer().Encode("a first sequence"));
  batch.Add(e->tokenizer().Encode("and a second one"));
  ForwardOptions all;
  all.return_states = true;
  const ForwardResult every = m.Forward(batch, all);
  ForwardOptions one = all;
  one.state_sequences = {1};
  const ForwardResult only = m.Forward(batch, one);
  ASSERT_EQ(only.states.size(), 2u);
  EXPECT_TRUE(only.states[0].empty());
  ASSERT_EQ(only.states[1].size(), every.states[1].size());
  for (size_t b = 0; b < every.states[1].size(); ++b) {
    EXPECT_EQ(only.states[1][b].wkv, every.states[1][b].wkv) << b;
  }
  // {empty, zeros} starts both sequences from zeros, like no initial states at all.
  const std::vector<SequenceState> init = {SequenceState{}, m.ZeroState()};
  const ForwardResult from_zeros = m.Forward(batch, all, {}, init);
  for (size_t s = 0; s < 2; ++s) {
    for (size_t b = 0; b < every.states[s].size(); ++b) {
      EXPECT_EQ(from_zeros.states[s][b].wkv, every.states[s][b].wkv) << s << " " << b;
      EXPECT_EQ(from_zeros.states[s][b].time_shift, every.states[s][b].time_shift) << s << " " << b;
    }
  }
  one.state_sequences = {2};
  EXPECT_THROW(m.Forward(batch, one), UsageError);
}

// The weight named in the error is the first bad one in forward order, not in file order (where
// head.weight sorts first) nor in load order (head and ln_out are loaded before the blocks).
TEST(RwkvEmbedderTest, FirstNonFiniteWeightIsInForwardOrder) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto tmp = testing::TempDir();
  auto dir = testing::PoisonedModelCopy(model.parent_path(), tmp / "a", "head.weight", 3, nan);
  dir = testing::PoisonedModelCopy(dir, tmp / "b", "rwkv.ln_out.weight", 4, nan);
  dir = testing::PoisonedModelCopy(dir, tmp / "c", "rwkv.blocks.1.ln1.bias", 5, nan);
  const auto weights = Rwkv6Weights::Load(dir);
  const auto first = weights->FindNonFiniteWeight();
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(first->find("tensor 'rwkv.blocks.1.ln1.bias'"), std::string::npos) << *first;
  EXPECT_NE(first->find("at element 5"), std::string::npos) << *first;
  EXPECT_EQ(Rwkv6Weights::Load(model.parent_path())->FindNonFiniteWeight(), std::nullopt);
}

// NaN in block 0's key: every sentence's later layers are NaN, so Embed stops in batch 1 (the
// progress callback, called after each batch, never runs) naming sentence 0 and the tensor.
TEST(RwkvEmbedderTest, NanWeightStopsAtTheFirstBatch) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  const auto dir = testing::PoisonedModelCopy(model.parent_path(), testing::TempDir() / "m",
                                              "rwkv.blocks.0.attention.key.weight", 17,
                                              std::numeric_limits<float>::quiet_NaN());
  auto e = LoadTiny(dir, 16, kernels::MatMulPrecision::kF32);
  int batches = 0;
  e->options().progress = [&](int64_t, int64_t, int64_t) { ++batches; };
  EmbedRequest request;  // every layer: layer 0 is still finite, layer 1 is not
  try {
    e->Embed(MixedTexts(), request);
    FAIL() << "no error";
  } catch (const NonFiniteEmbeddingError& err) {
    const std::string what = err.what();
    EXPECT_EQ(err.sentence(), 0);
    for (const char* part :
         {"for sentence 0 in layer 1 (block 1)", "first turn non-finite at layer 1 (block 1)",
          "tensor 'rwkv.blocks.0.attention.key.weight'", "at element 17", "forward batch 1,"}) {
      EXPECT_NE(what.find(part), std::string::npos) << part << "\n" << what;
    }
  }
  EXPECT_EQ(batches, 0);
  // Layer 0 does not depend on the blocks: still embedded, and finite.
  request.layers = {0};
  EXPECT_NO_THROW(e->Embed(MixedTexts(), request));
}

// A NaN in the embedding row of one token that only a late part of a long text uses: the error
// comes from a piece that continues a sentence from its carried state, in a later batch, and
// names that sentence and where its NaN starts.
TEST(RwkvEmbedderTest, NanInACarriedPieceNamesTheRightSentence) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-f32/model.safetensors");
  auto clean = LoadTiny(model.parent_path(), 16, kernels::MatMulPrecision::kF32);
  const std::vector<int32_t> rare = clean->tokenizer().Encode(" xylophone");
  std::vector<std::string> texts = MixedTexts();
  for (const auto& t : texts) {
    const auto ids = clean->tokenizer().Encode(t);
    ASSERT_EQ(std::find(ids.begin(), ids.end(), rare[0]), ids.end()) << t;
  }
  texts[7] += " xylophone";  // texts[7] has 150 words: its last piece is a continuation
  const int64_t C = clean->Dim();
  const auto dir = testing::PoisonedModelCopy(model.parent_path(), testing::TempDir() / "m",
                                              "rwkv.embeddings.weight", rare[0] * C + 5,
                                              std::numeric_limits<float>::infinity());
  auto e = LoadTiny(dir, 16, kernels::MatMulPrecision::kF32);
  int batches = 0;
  e->options().progress = [&](int64_t, int64_t, int64_t) { ++batches; };
  EmbedRequest request;
  request.layers = {2};
  request.pooling = Pooling::kLast;
  try {
    e->Embed(texts, request);
    FAIL() << "no error";
  } catch (const NonFiniteEmbeddingError& err) {
    const std::string what = err.what();
    EXPECT_EQ(err.sentence(), 7);
    for (const std::string& part : std::vector<std::string>{
             "for sentence 7 in layer 2 (block 2)", "first turn non-finite at layer 0 (embeddings",
             "tensor 'rwkv.embeddings.weight'", "at element " + std::to_string(rare[0] * C + 5)}) {
      EXPECT_NE(what.find(part), std::string::npos) << part << "\n" << what;
    }
    EXPECT_EQ(what.find("tokens [0,"), std::string::npos) << "not a continuation: " << what;
  }
  int64_t before = 0;  // tokens of the sentences before texts[7] and of texts[7] itself
  for (int i = 0; i <= 7; ++i)
    before += static_cast<int64_t>(clean->tokenizer().Encode(texts[i]).size());
  EXPECT_EQ(batches, (before - 1) / 16);  // stopped in the batch holding the last token of #7
}

}  // namespace
}  // namespace rwkv_embed
