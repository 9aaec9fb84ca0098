// The server's request parsing, responses and batcher without HTTP (serve/protocol.h,
// serve/batcher.h); tests/serve_http_test.cc runs the real server.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/protocol.h"
#include "tokenizer/byte_tokenizer.h"

namespace rwkv_embed::serve {
namespace {

using nlohmann::json;

ServeConfig Config() {
  ServeConfig c;
  c.model_name = "tiny";
  c.numbering.num_blocks = 3;
  c.dim = 4;
  c.vocab_size = 256;
  c.layers = {4};
  c.max_input_tokens = 5;
  c.max_inputs = 3;
  return c;
}

// The status a parse throws, or 0 when it succeeds.
template <class F>
int StatusOf(F&& parse) {
  try {
    parse();
  } catch (const RequestError& e) {
    return e.status();
  }
  return 0;
}

int OpenAiStatus(const std::string& body) {
  return StatusOf([&] { ParseOpenAiEmbeddings(body, Config()); });
}

TEST(ServeProtocol, OpenAiInputShapes) {
  const ServeConfig c = Config();
  auto r = ParseOpenAiEmbeddings(R"({"input": "a b", "model": "x", "user": "u"})", c);
  EXPECT_EQ(r.texts, std::vector<std::string>{"a b"});
  EXPECT_FALSE(r.from_tokens);
  EXPECT_FALSE(r.base64);
  EXPECT_EQ(r.options, (EmbedOptions{{4}, Pooling::kMean, Normalization::kL2}));
  r = ParseOpenAiEmbeddings(R"({"input": ["a", "b"], "encoding_format": "base64"})", c);
  EXPECT_EQ(r.texts.size(), 2u);
  EXPECT_TRUE(r.base64);
  r = ParseOpenAiEmbeddings(R"({"input": [1, 2, 3]})", c);
  ASSERT_TRUE(r.from_tokens);
  EXPECT_EQ(r.token_ids, (std::vector<std::vector<int32_t>>{{1, 2, 3}}));
  r = ParseOpenAiEmbeddings(R"({"input": [[1], [2, 255]], "dimensions": 2})", c);
  EXPECT_EQ(r.token_ids, (std::vector<std::vector<int32_t>>{{1}, {2, 255}}));
  EXPECT_EQ(r.dimensions, 2);
  r = ParseOpenAiEmbeddings(
      R"({"input": "a", "layers": "1,3", "pooling": "max", "normalize": "none", "truncate": true})",
      c);
  EXPECT_EQ(r.options, (EmbedOptions{{1, 3}, Pooling::kMax, Normalization::kNone}));
  EXPECT_TRUE(r.truncate);
  r = ParseOpenAiEmbeddings(R"({"input": "a", "layers": [0, 4], "normalize": false})", c);
  EXPECT_EQ(r.options.layers, (std::vector<int>{0, 4}));
  EXPECT_EQ(r.options.normalization, Normalization::kNone);
  r = ParseOpenAiEmbeddings(R"({"input": "a", "layers": "final", "model": null})", c);
  EXPECT_EQ(r.options.layers, std::vector<int>{4});
}

TEST(ServeProtocol, MalformedOrWrongTypesAre400) {
  for (const char* body : {"",
                           "{",
                           "[1]",
                           "\"x\"",
                           "{\"input\": \"a\",}",
                           "{}",
                           R"({"model": "m"})",
                           R"({"input": 3})",
                           R"({"input": {"a": 1}})",
                           R"({"input": ["a", 1]})",
                           R"({"input": [[1], "a"]})",
                           R"({"input": [[1.5]]})",
                           R"({"input": [1, "a"]})",
                           R"({"input": "a", "dimensions": 2.0})",
                           R"({"input": "a", "dimensions": "2"})",
                           R"({"input": "a", "encoding_format": 1})",
                           R"({"input": "a", "layers": 1})",
                           R"({"input": "a", "layers": [1.0]})",
                           R"({"input": "a", "pooling": 1})",
                           R"({"input": "a", "normalize": 1})",
                           R"({"input": "a", "truncate": "yes"})",
                           R"({"input": "a", "model": 1})",
                           R"({"input": "\ud800"})"}) {
    EXPECT_EQ(OpenAiStatus(body), 400) << body;
  }
}

TEST(ServeProtocol, InvalidValuesAre422) {
  for (const std::string& body :
       {std::string(R"({"input": ""})"), std::string(R"({"input": ["a", ""]})"),
        std::string(R"({"input": []})"), std::string(R"({"input": [[]]})"),
        std::string(R"({"input": [[1], []]})"), std::string(R"({"input": [256]})"),
        std::string(R"({"input": [-1]})"), std::string(R"({"input": [99999999999999999999]})"),
        std::string(R"({"input": ["a", "b", "c", "d"]})"),
        std::string(R"({"input": "a", "dimensions": 0})"),
        std::string(R"({"input": "a", "dimensions": 5})"),
        std::string(R"({"input": "a", "encoding_format": "hex"})"),
        std::string(R"({"input": "a", "layers": "9"})"),
        std::string(R"({"input": "a", "layers": [5]})"),
        std::string(R"({"input": "a", "layers": [1, 1]})"),
        std::string(R"({"input": "a", "layers": []})"),
        std::string(R"({"input": "a", "pooling": "median"})"),
        std::string(R"({"input": "a", "normalize": "l1"})"),
        std::string("{\"input\": \"a\xff\"}")}) {
    EXPECT_EQ(OpenAiStatus(body), 422) << body;
  }
}

TEST(ServeProtocol, TeiAndTokenize) {
  const ServeConfig c = Config();
  auto r = ParseTeiEmbed(R"({"inputs": ["x", "y"], "normalize": false, "truncate": true})", c);
  EXPECT_EQ(r.route, Route::kTei);
  EXPECT_EQ(r.texts.size(), 2u);
  EXPECT_EQ(r.options.normalization, Normalization::kNone);
  EXPECT_TRUE(r.truncate);
  EXPECT_EQ(StatusOf([&] { ParseTeiEmbed(R"({"inputs": "x", "layers": "1,2"})", c); }), 422);
  EXPECT_EQ(StatusOf([&] { ParseTeiEmbed(R"({"input": "x"})", c); }), 400);
  EXPECT_EQ(StatusOf([&] { ParseTeiEmbed(R"({"inputs": [""]})", c); }), 422);
  EXPECT_EQ(ParseTokenize(R"({"inputs": "x", "add_special_tokens": true})", c).texts.size(), 1u);
  EXPECT_EQ(StatusOf([&] { ParseTokenize(R"({"inputs": 1})", c); }), 400);
  EXPECT_EQ(StatusOf([&] { ParseTokenize(R"({"inputs": "x", "add_special_tokens": 1})", c); }),
            400);
}

TEST(ServeProtocol, PrepareTokensLimitsAndTruncation) {
  const ServeConfig c = Config();  // max 5 tokens per input
  const ByteTokenizer bytes;
  auto r = ParseOpenAiEmbeddings(R"({"input": ["abc", "abcdef"]})", c);
  EXPECT_EQ(StatusOf([&] { PrepareTokens(r, bytes, c); }), 422);
  r.truncate = true;
  const auto ids = PrepareTokens(r, bytes, c);
  EXPECT_EQ(ids[0], (std::vector<int32_t>{'a', 'b', 'c'}));
  EXPECT_EQ(ids[1], (std::vector<int32_t>{'a', 'b', 'c', 'd', 'e'}));
  r = ParseOpenAiEmbeddings(R"({"input": [[1, 2, 3, 4, 5, 6]]})", c);
  EXPECT_EQ(StatusOf([&] { PrepareTokens(r, bytes, c); }), 422);
}

EmbedResult TwoRows() {
  EmbedResult r;
  r.layers = {4};
  r.embeddings.emplace_back(2, 4);
  const float rows[2][4] = {{0.5f, 0.5f, 0.5f, 0.5f}, {3.0f, 4.0f, 0.0f, 1e-30f}};
  for (int i = 0; i < 2; ++i) std::memcpy(r.embeddings[0].Row(i), rows[i], sizeof(rows[i]));
  r.empty = {0, 0};
  return r;
}

std::vector<float> DecodeBase64Floats(const std::string& s) {
  auto value = [](char ch) -> uint32_t {
    return static_cast<uint32_t>(
        std::string_view("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
            .find(ch));
  };
  std::string bytes;
  for (size_t i = 0; i + 4 <= s.size(); i += 4) {
    uint32_t v = value(s[i]) << 18 | value(s[i + 1]) << 12;
    if (s[i + 2] != '=') v |= value(s[i + 2]) << 6;
    if (s[i + 3] != '=') v |= value(s[i + 3]);
    bytes += static_cast<char>(v >> 16);
    if (s[i + 2] != '=') bytes += static_cast<char>(v >> 8 & 0xff);
    if (s[i + 3] != '=') bytes += static_cast<char>(v & 0xff);
  }
  std::vector<float> out(bytes.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {  // little-endian on the wire, whatever the host
    uint32_t bits = 0;
    for (int b = 3; b >= 0; --b) bits = bits << 8 | static_cast<uint8_t>(bytes[i * 4 + b]);
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

TEST(ServeProtocol, Base64KnownVectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  const float one = 1.0f;  // 0x3f800000, little-endian 00 00 80 3f
  EXPECT_EQ(Float32LittleEndianBytes(&one, 1), std::string("\x00\x00\x80\x3f", 4));
}

TEST(ServeProtocol, OpenAiResponseFloatAndBase64CarryTheSameBits) {
  const ServeConfig c = Config();
  const EmbedResult result = TwoRows();
  auto request = ParseOpenAiEmbeddings(R"({"input": ["a", "b"]})", c);
  const json text = json::parse(OpenAiEmbeddingsResponse(request, result, 7, c));
  request.base64 = true;
  const json b64 = json::parse(OpenAiEmbeddingsResponse(request, result, 7, c));
  EXPECT_EQ(text["object"], "list");
  EXPECT_EQ(text["model"], "tiny");
  EXPECT_EQ(text["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(text["usage"]["total_tokens"], 7);
  ASSERT_EQ(text["data"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(text["data"][i]["object"], "embedding");
    EXPECT_EQ(text["data"][i]["index"], i);
    const std::vector<float> floats = text["data"][i]["embedding"].get<std::vector<float>>();
    const std::vector<float> decoded = DecodeBase64Floats(b64["data"][i]["embedding"]);
    ASSERT_EQ(floats.size(), 4u);
    ASSERT_EQ(decoded.size(), 4u);
    EXPECT_EQ(std::memcmp(floats.data(), result.embeddings[0].Row(i), 16), 0);
    EXPECT_EQ(std::memcmp(decoded.data(), result.embeddings[0].Row(i), 16), 0);
  }
}

TEST(ServeProtocol, DimensionsTruncateThenRenormalise) {
  const ServeConfig c = Config();
  auto request = ParseOpenAiEmbeddings(R"({"input": ["a", "b"], "dimensions": 2})", c);
  const json out = json::parse(OpenAiEmbeddingsResponse(request, TwoRows(), 2, c));
  const auto v = out["data"][1]["embedding"].get<std::vector<float>>();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_FLOAT_EQ(v[0], 0.6f);  // (3, 4) / 5
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  request.options.normalization = Normalization::kNone;  // truncation only
  const json raw = json::parse(OpenAiEmbeddingsResponse(request, TwoRows(), 2, c));
  EXPECT_EQ(raw["data"][1]["embedding"].get<std::vector<float>>(), (std::vector<float>{3, 4}));
}

TEST(ServeProtocol, NeverAnswersZeroOrNonFiniteVectors) {
  const ServeConfig c = Config();
  auto request = ParseOpenAiEmbeddings(R"({"input": ["a", "b"]})", c);
  EmbedResult result = TwoRows();
  result.embeddings[0].Row(1)[2] = std::nanf("");
  EXPECT_EQ(StatusOf([&] { OpenAiEmbeddingsResponse(request, result, 2, c); }), 500);
  result = TwoRows();
  std::fill(result.embeddings[0].Row(0), result.embeddings[0].Row(0) + 4, 0.0f);
  EXPECT_EQ(StatusOf([&] { OpenAiEmbeddingsResponse(request, result, 2, c); }), 500);
  EXPECT_EQ(StatusOf([&] { TeiEmbedResponse(request, result); }), 500);
  // (0, 0, 0, 1e-30) truncated to 2 dimensions is all zeros: never a 200.
  result = TwoRows();
  result.embeddings[0].Row(1)[0] = result.embeddings[0].Row(1)[1] = 0;
  request.dimensions = 2;
  EXPECT_EQ(StatusOf([&] { OpenAiEmbeddingsResponse(request, result, 2, c); }), 500);
}

TEST(ServeProtocol, ErrorBodyHasOpenAiShape) {
  const json e = json::parse(ErrorBody(Overloaded("busy")));
  EXPECT_EQ(e["error"]["message"], "busy");
  EXPECT_EQ(e["error"]["type"], "rate_limit_error");
  EXPECT_EQ(e["error"]["code"], "overloaded");
  EXPECT_EQ(json::parse(ErrorBody(413, "big"))["error"]["code"], "payload_too_large");
}

TEST(ServeProtocol, ApiKey) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_NO_THROW(CheckApiKey("", ""));
  EXPECT_NO_THROW(CheckApiKey("Bearer k1", "k1"));
  EXPECT_EQ(StatusOf([] { CheckApiKey("", "k1"); }), 401);
  EXPECT_EQ(StatusOf([] { CheckApiKey("Bearer k2", "k1"); }), 401);
  EXPECT_EQ(StatusOf([] { CheckApiKey("k1", "k1"); }), 401);
  EXPECT_EQ(StatusOf([] { CheckApiKey("Bearer k1x", "k1"); }), 401);
}

// A fake forward pass: row i of every layer is (first id, length, layer, option tag), so each
// request can check it got its own rows; it records every call and can be held at the gate.
struct FakeEngine {
  std::mutex mutex;
  std::vector<std::vector<int32_t>> calls;  // first ids of each call
  std::promise<void> gate;
  std::shared_future<void> opened = gate.get_future().share();
  bool hold = false;

  EmbedResult Run(std::vector<std::vector<int32_t>> ids, const EmbedRequest& request) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      calls.emplace_back();
      for (const auto& t : ids) calls.back().push_back(t[0]);
    }
    if (hold) opened.wait();
    for (const auto& t : ids) {
      if (t[0] == 666) throw NonFiniteEmbeddingError(0, "sentence 0", "");
    }
    EmbedResult r;
    r.layers = request.layers;
    for (int l : request.layers) {
      Matrix m(static_cast<int64_t>(ids.size()), 4);
      for (size_t i = 0; i < ids.size(); ++i) {
        const float row[4] = {static_cast<float>(ids[i][0]), static_cast<float>(ids[i].size()),
                              static_cast<float>(l), static_cast<float>(request.pooling)};
        std::memcpy(m.Row(static_cast<int64_t>(i)), row, sizeof(row));
      }
      r.embeddings.push_back(std::move(m));
    }
    r.empty.assign(ids.size(), 0);
    return r;
  }
};

TEST(ServeBatcher, GroupsByOptionsSplitsRowsAndBoundsTheQueue) {
  FakeEngine engine;
  engine.hold = true;
  Metrics metrics;
  BatcherOptions options;
  options.max_batch_delay = std::chrono::microseconds(0);
  options.max_concurrent_requests = 4;
  Batcher batcher([&](auto ids, const auto& r) { return engine.Run(std::move(ids), r); }, options,
                  &metrics);
  const EmbedOptions a{{4}, Pooling::kMean, Normalization::kL2};
  const EmbedOptions b{{1, 2}, Pooling::kMax, Normalization::kL2};
  auto f1 = batcher.Submit({{1, 1}}, a);
  // The worker is now held inside the first call; these queue up behind it.
  for (;;) {
    std::lock_guard<std::mutex> lock(engine.mutex);
    if (!engine.calls.empty()) break;
  }
  auto f2 = batcher.Submit({{2}, {3, 3, 3}}, a);
  auto f3 = batcher.Submit({{4}}, b);
  auto f4 = batcher.Submit({{5}}, a);
  try {
    batcher.Submit({{6}}, a);
    ADD_FAILURE() << "a fifth request was admitted past --max-concurrent-requests 4";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 429);
  }
  EXPECT_EQ(batcher.queued(), 3);
  engine.gate.set_value();
  const EmbedResult r2 = f2.get(), r3 = f3.get(), r4 = f4.get();
  f1.get();
  // One call for f1, one for f2 + f4 (same options), one for f3.
  ASSERT_EQ(engine.calls.size(), 3u);
  EXPECT_EQ(engine.calls[1], (std::vector<int32_t>{2, 3, 5}));
  EXPECT_EQ(engine.calls[2], (std::vector<int32_t>{4}));
  ASSERT_EQ(r2.embeddings[0].rows(), 2);
  EXPECT_EQ(r2.embeddings[0].Row(1)[0], 3.0f);
  EXPECT_EQ(r2.embeddings[0].Row(1)[1], 3.0f);
  EXPECT_EQ(r2.tokens, 4);
  EXPECT_EQ(r4.embeddings[0].Row(0)[0], 5.0f);
  ASSERT_EQ(r3.layers, (std::vector<int>{1, 2}));
  EXPECT_EQ(r3.embeddings[1].Row(0)[2], 2.0f);
  EXPECT_EQ(r3.embeddings[1].Row(0)[3], static_cast<float>(Pooling::kMax));
  EXPECT_NE(metrics.Render().find("te_batch_inference_size_count 3"), std::string::npos);
  batcher.Drain();
  try {
    batcher.Submit({{7}}, a);
    ADD_FAILURE() << "admitted while draining";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 503);
  }
}

TEST(ServeBatcher, TokenBudgetAndOnlyTheFailingRequestFails) {
  FakeEngine engine;
  engine.hold = true;
  BatcherOptions options;
  options.max_batch_tokens = 3;
  options.max_batch_delay = std::chrono::microseconds(0);
  Batcher batcher([&](auto ids, const auto& r) { return engine.Run(std::move(ids), r); }, options);
  const EmbedOptions a{{4}, Pooling::kMean, Normalization::kL2};
  auto f0 = batcher.Submit({{9}}, a);
  for (;;) {
    std::lock_guard<std::mutex> lock(engine.mutex);
    if (!engine.calls.empty()) break;
  }
  auto big = batcher.Submit({{1, 1, 1, 1, 1}}, a);  // over budget: runs alone
  auto ok = batcher.Submit({{2}}, a);
  auto bad = batcher.Submit({{666}}, a);
  auto ok2 = batcher.Submit({{3, 3}}, a);
  engine.gate.set_value();
  EXPECT_EQ(big.get().embeddings[0].Row(0)[1], 5.0f);
  EXPECT_EQ(ok.get().embeddings[0].Row(0)[0], 2.0f);
  EXPECT_THROW(bad.get(), NonFiniteEmbeddingError);
  EXPECT_EQ(ok2.get().embeddings[0].Row(0)[0], 3.0f);
  f0.get();
  batcher.Stop();
  // calls: {9}, {1} alone, {2, 666} (3 tokens > budget with {3,3}) failing, then {2} and {666}
  // alone, then {3}.
  ASSERT_GE(engine.calls.size(), 5u);
  EXPECT_EQ(engine.calls[1], std::vector<int32_t>{1});
  EXPECT_EQ(engine.calls[2], (std::vector<int32_t>{2, 666}));
}

TEST(ServeBatcher, StopAnswersEverythingQueued) {
  FakeEngine engine;
  BatcherOptions options;
  options.max_batch_delay = std::chrono::seconds(600);  // Stop must not wait for it
  auto batcher = std::make_unique<Batcher>(
      [&](auto ids, const auto& r) { return engine.Run(std::move(ids), r); }, options);
  std::vector<std::future<EmbedResult>> futures;
  for (int i = 1; i <= 5; ++i) {
    futures.push_back(batcher->Submit({{i}}, {{4}, Pooling::kMean, Normalization::kL2}));
  }
  batcher->Stop();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(futures[i].get().embeddings[0].Row(0)[0], i + 1.0f);
}

}  // namespace
}  // namespace rwkv_embed::serve
