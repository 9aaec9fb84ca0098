// `rwkv-embed serve` end to end: a server started on a free loopback port (--port 0, the port read
// from its stderr), every route and error status, bits identical to `rwkv-embed embed`, many
// concurrent clients, 429 on a full queue, 503 while loading, SIGTERM finishing in-flight work.
// Both processes run on one forced GEMM path so that cross-process bits are comparable.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "io/npy.h"
#include "test_util.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {
namespace {

using nlohmann::json;
using testing::CliPath;
using testing::RunCli;
using testing::SharedFile;

constexpr const char* kModel = "models/tiny-rwkv6-bf16";
constexpr const char* kGemm = "portable";

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A `rwkv-embed serve` child process; killed at destruction if still running.
class Server {
 public:
  Server(const std::vector<std::string>& args, const std::string& api_key_env = "") {
    log_ = testing::TempDir() / ("serve-" + std::to_string(counter_++) + ".log");
    std::vector<std::string> argv = {CliPath().string(), "serve", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      if (!api_key_env.empty()) setenv("RWKV_EMBED_API_KEY", api_key_env.c_str(), 1);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(127);
    }
    const std::string marker = "listening on http://127.0.0.1:";
    for (int i = 0; i < 6000 && port_ == 0; ++i) {
      const std::string log = ReadFile(log_);
      const size_t at = log.find(marker);
      if (at != std::string::npos && log.find(' ', at + marker.size()) != std::string::npos) {
        port_ = std::stoi(log.substr(at + marker.size()));
      } else if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  ~Server() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string Log() const { return ReadFile(log_); }

  httplib::Client Client(const std::string& key = "") const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    return c;
  }
  // Polls /health until 200 (bounded).
  bool WaitReady() const {
    auto c = Client();
    for (int i = 0; i < 6000; ++i) {
      auto r = c.Get("/health");
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // SIGTERM, then the exit status (-1 if it did not exit within 60 s or was killed by a signal).
  int Terminate() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 6000; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Distinct MRPC dev sentences.
std::vector<std::string> Sentences(size_t n) {
  std::ifstream in(SharedFile("data/mrpc/dev.tsv"));
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::string> out;
  while (out.size() < n && std::getline(in, line)) {
    std::vector<std::string> cols;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, '\t');) cols.push_back(c);
    for (int k : {3, 4}) {
      if (cols.size() > 4 && out.size() < n &&
          std::find(out.begin(), out.end(), cols[k]) == out.end()) {
        out.push_back(cols[k]);
      }
    }
  }
  return out;
}

// `rwkv-embed embed` over `texts`: [layers, N, C].
NpyArray EmbedReference(const std::vector<std::string>& texts, const std::string& layers,
                        const std::string& pooling, const std::string& normalize) {
  const auto dir = testing::TempDir();
  std::ofstream(dir / "in.txt") << [&] {
    std::string s;
    for (const auto& t : texts) s += t + "\n";
    return s;
  }();
  const auto run =
      RunCli({"embed", "--model", SharedFile(kModel).string(), "--input", (dir / "in.txt").string(),
              "--output", (dir / "ref.npy").string(), "--layers", layers, "--pooling", pooling,
              "--normalize", normalize, "--gemm-path", kGemm});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return ReadNpyF32(dir / "ref.npy");
}

std::vector<float> DecodeBase64(const std::string& s) {
  const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  for (size_t i = 0; i + 4 <= s.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      v <<= 6;
      if (s[i + k] == '=') {
        ++pad;
      } else {
        v |= static_cast<uint32_t>(alphabet.find(s[i + k]));
      }
    }
    for (int k = 0; k < 3 - pad; ++k) bytes += static_cast<char>(v >> (16 - 8 * k) & 0xff);
  }
  std::vector<float> out(bytes.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 3; b >= 0; --b) bits = bits << 8 | static_cast<uint8_t>(bytes[i * 4 + b]);
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

// The vector of one data item, from either encoding.
std::vector<float> Vector(const json& item) {
  const json& e = item["embedding"];
  if (e.is_string()) return DecodeBase64(e.get<std::string>());
  std::vector<float> v;
  for (const json& x : e) v.push_back(static_cast<float>(x.get<double>()));
  return v;
}

bool SameBits(const std::vector<float>& v, const float* ref, int64_t n) {
  return static_cast<int64_t>(v.size()) == n && std::memcmp(v.data(), ref, n * 4) == 0;
}

void ExpectError(const httplib::Result& r, int status, const std::string& code) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  const json body = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r->body;
  EXPECT_TRUE(body["error"]["message"].is_string()) << r->body;
  EXPECT_TRUE(body["error"]["type"].is_string()) << r->body;
  EXPECT_EQ(body["error"]["code"], code) << r->body;
}

class ServeHttp : public ::testing::Test {
 protected:
  static constexpr const char* kKey = "test-key-123";
  static constexpr int64_t kDim = 128;
  static void SetUpTestSuite() {
    if (SharedFile(kModel).empty()) return;
    texts_ = new std::vector<std::string>(Sentences(48));
    ref_ = new NpyArray(EmbedReference(*texts_, "final", "mean", "l2"));
    server_ = new Server({"--model", SharedFile(kModel).string(), "--gemm-path", kGemm, "--api-key",
                          kKey, "--payload-limit", "65536", "--max-input-tokens", "64",
                          "--max-batch-delay-ms", "5", "--threads", "1"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete ref_;
    delete texts_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (SharedFile(kModel).empty()) GTEST_SKIP() << "shared model absent: " << kModel;
    ASSERT_GT(server_->port(), 0) << server_->Log();
    ASSERT_TRUE(server_->WaitReady()) << server_->Log();
  }
  static httplib::Result Post(const std::string& path, const json& body) {
    return server_->Client(kKey).Post(path.c_str(), body.dump(), "application/json");
  }
  const float* Ref(size_t i) const { return ref_->data.data() + i * kDim; }

  static inline std::vector<std::string>* texts_ = nullptr;
  static inline NpyArray* ref_ = nullptr;
  static inline Server* server_ = nullptr;
};

TEST_F(ServeHttp, OpenAiFloatAndBase64BitIdenticalToEmbed) {
  for (const char* format : {"float", "base64"}) {
    const auto r = Post(
        "/v1/embeddings",
        {{"input", *texts_}, {"model", "anything"}, {"encoding_format", format}, {"user", "u"}});
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    const json out = json::parse(r->body);
    EXPECT_EQ(out["object"], "list");
    EXPECT_EQ(out["model"], "tiny-rwkv6-bf16");
    ASSERT_EQ(out["data"].size(), texts_->size());
    for (size_t i = 0; i < texts_->size(); ++i) {
      EXPECT_EQ(out["data"][i]["object"], "embedding");
      EXPECT_EQ(out["data"][i]["index"], i);
      EXPECT_TRUE(SameBits(Vector(out["data"][i]), Ref(i), kDim)) << format << " input " << i;
    }
    // Real token counts: the World tokenizer's.
    const auto tok = WorldTokenizer::FromVocabFile(SharedFile(kModel) / "rwkv_vocab_v20230424.txt");
    int64_t tokens = 0;
    for (const auto& t : *texts_) tokens += static_cast<int64_t>(tok.Encode(t).size());
    EXPECT_EQ(out["usage"]["prompt_tokens"], tokens);
    EXPECT_EQ(out["usage"]["total_tokens"], tokens);
  }
}

TEST_F(ServeHttp, ExtensionFieldsMatchEmbedWithTheSameOptions) {
  const std::vector<std::string> texts(texts_->begin(), texts_->begin() + 5);
  const NpyArray ref = EmbedReference(texts, "1,4", "max", "none");
  const auto r = Post("/v1/embeddings", {{"input", texts},
                                         {"layers", "1,4"},
                                         {"pooling", "max"},
                                         {"normalize", "none"},
                                         {"encoding_format", "base64"}});
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
  const json out = json::parse(r->body);
  ASSERT_EQ(out["data"].size(), 10u);  // input-major, one item per layer
  for (size_t i = 0; i < 5; ++i) {
    for (size_t l = 0; l < 2; ++l) {
      const json& item = out["data"][i * 2 + l];
      EXPECT_EQ(item["index"], i);
      EXPECT_EQ(item["layer"], l == 0 ? 1 : 4);
      EXPECT_TRUE(SameBits(Vector(item), ref.data.data() + (l * 5 + i) * kDim, kDim));
    }
  }
}

TEST_F(ServeHttp, TokenIdInputsDimensionsAndTruncate) {
  const auto tok = WorldTokenizer::FromVocabFile(SharedFile(kModel) / "rwkv_vocab_v20230424.txt");
  const std::vector<int32_t> ids0 = tok.Encode((*texts_)[0]), ids1 = tok.Encode((*texts_)[1]);
  auto r = Post("/v1/embeddings", {{"input", {ids0, ids1}}, {"encoding_format", "base64"}});
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
  json out = json::parse(r->body);
  EXPECT_TRUE(SameBits(Vector(out["data"][0]), Ref(0), kDim));
  EXPECT_TRUE(SameBits(Vector(out["data"][1]), Ref(1), kDim));
  EXPECT_EQ(out["usage"]["prompt_tokens"], ids0.size() + ids1.size());
  // One flat id array is one input.
  r = Post("/v1/embeddings", {{"input", ids0}, {"encoding_format", "base64"}});
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_TRUE(SameBits(Vector(json::parse(r->body)["data"][0]), Ref(0), kDim));

  r = Post("/v1/embeddings", {{"input", (*texts_)[0]}, {"dimensions", 16}});
  ASSERT_TRUE(r && r->status == 200);
  const std::vector<float> v = Vector(json::parse(r->body)["data"][0]);
  ASSERT_EQ(v.size(), 16u);
  double norm = 0;
  for (float x : v) norm += double{x} * x;
  EXPECT_NEAR(norm, 1.0, 1e-6);

  // Over --max-input-tokens 64: 422, or cut at 64 tokens with truncate.
  std::string long_text;
  for (int i = 0; i < 10; ++i) long_text += (*texts_)[i] + " ";
  std::vector<int32_t> ids = tok.Encode(long_text);
  ASSERT_GT(ids.size(), 64u);
  ExpectError(Post("/v1/embeddings", {{"input", long_text}}), 422, "validation_error");
  ExpectError(Post("/v1/embeddings", {{"input", ids}}), 422, "validation_error");
  r = Post("/v1/embeddings",
           {{"input", long_text}, {"truncate", true}, {"encoding_format", "base64"}});
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  ids.resize(64);
  const auto cut = Post("/v1/embeddings", {{"input", ids}, {"encoding_format", "base64"}});
  ASSERT_TRUE(cut && cut->status == 200);
  EXPECT_EQ(Vector(json::parse(r->body)["data"][0]), Vector(json::parse(cut->body)["data"][0]));
  EXPECT_EQ(json::parse(r->body)["usage"]["prompt_tokens"], 64);
}

TEST_F(ServeHttp, TeiEmbedTokenizeInfoMetricsHealth) {
  auto r = Post("/embed", {{"inputs", {(*texts_)[2], (*texts_)[3]}}});
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  const json out = json::parse(r->body);
  ASSERT_EQ(out.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(SameBits(out[i].get<std::vector<float>>(), Ref(i + 2), kDim));
  }
  r = Post("/tokenize", {{"inputs", (*texts_)[0]}});
  ASSERT_TRUE(r && r->status == 200);
  const auto tok = WorldTokenizer::FromVocabFile(SharedFile(kModel) / "rwkv_vocab_v20230424.txt");
  const std::vector<int32_t> ids = tok.Encode((*texts_)[0]);
  const json tokens = json::parse(r->body)[0];
  ASSERT_EQ(tokens.size(), ids.size());
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(tokens[i]["id"], ids[i]);
    EXPECT_EQ(tokens[i]["start"], joined.size());
    joined += tokens[i]["text"].get<std::string>();
    EXPECT_EQ(tokens[i]["stop"], joined.size());
  }
  EXPECT_EQ(joined, (*texts_)[0]);  // MRPC is ASCII: no token splits a character

  auto c = server_->Client(kKey);
  r = c.Get("/info");
  ASSERT_TRUE(r && r->status == 200);
  const json info = json::parse(r->body);
  EXPECT_EQ(info["dim"], kDim);
  EXPECT_EQ(info["num_blocks"], 3);
  EXPECT_EQ(info["layers"], json::array({4}));
  EXPECT_EQ(info["pooling"], "mean");
  EXPECT_EQ(info["normalize"], "l2");
  EXPECT_EQ(info["max_input_tokens"], 64);
  EXPECT_EQ(info["payload_limit"], 65536);
  r = c.Get("/metrics");
  ASSERT_TRUE(r && r->status == 200);
  for (const char* name :
       {"te_request_count{method=\"/embed\"}", "te_request_success{method=\"/embed\"}",
        "te_request_duration_bucket", "te_request_queue_duration_count",
        "te_batch_inference_duration_sum", "te_request_input_length_bucket",
        "te_batch_inference_size_count", "te_batch_inference_tokens_count", "te_embed_tokens_total",
        "te_queue_size"}) {
    EXPECT_NE(r->body.find(name), std::string::npos) << name;
  }
  r = server_->Client().Get("/health");  // no key needed
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServeHttp, EveryErrorStatus) {
  auto c = server_->Client(kKey);
  ExpectError(c.Post("/v1/embeddings", "{\"input\": ", "application/json"), 400, "invalid_json");
  ExpectError(Post("/v1/embeddings", {{"input", 5}}), 400, "invalid_json");
  ExpectError(Post("/embed", {{"inputs", {1, 2}}}), 400, "invalid_json");
  ExpectError(Post("/tokenize", json::object()), 400, "invalid_json");
  ExpectError(server_->Client().Post("/v1/embeddings", R"({"input": "a"})", "application/json"),
              401, "invalid_api_key");
  ExpectError(server_->Client("wrong").Post("/embed", R"({"inputs": "a"})", "application/json"),
              401, "invalid_api_key");
  ExpectError(server_->Client().Get("/info"), 401, "invalid_api_key");
  ExpectError(server_->Client("wrong").Get("/metrics"), 401, "invalid_api_key");
  const std::string big = json{{"input", std::string(70000, 'a')}}.dump();  // > 65536 bytes
  ExpectError(c.Post("/v1/embeddings", big, "application/json"), 413, "payload_too_large");
  ExpectError(Post("/v1/embeddings", {{"input", ""}}), 422, "validation_error");
  ExpectError(Post("/embed", {{"inputs", {"a", ""}}}), 422, "validation_error");
  ExpectError(c.Post("/v1/embeddings", "{\"input\": \"caf\xc3\"}", "application/json"), 422,
              "validation_error");
  ExpectError(Post("/v1/embeddings", {{"input", "a"}, {"dimensions", 129}}), 422,
              "validation_error");
  ExpectError(Post("/v1/embeddings", {{"input", {70000}}}), 422, "validation_error");
  ExpectError(Post("/v1/embeddings", {{"input", "a"}, {"pooling", "median"}}), 422,
              "validation_error");
  ExpectError(c.Get("/nope"), 404, "not_found");
  const auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  for (const char* err :
       {"invalid_json", "invalid_api_key", "payload_too_large", "validation_error"}) {
    EXPECT_NE(metrics->body.find(std::string("te_request_failure{err=\"") + err + "\"}"),
              std::string::npos)
        << err;
  }
}

// Many clients at once with 1-16 texts each, float and base64: every vector is the one `embed`
// gives, whatever it was batched with.
TEST_F(ServeHttp, ConcurrentMixedRequestsBitIdentical) {
  constexpr int kThreads = 16, kRequests = 6;
  std::vector<std::future<int>> results;
  for (int t = 0; t < kThreads; ++t) {
    results.push_back(std::async(std::launch::async, [this, t] {
      std::mt19937 rng(t);
      auto c = server_->Client(kKey);
      int wrong = 0;
      for (int k = 0; k < kRequests; ++k) {
        const size_t n = 1 + rng() % 16;
        std::vector<size_t> pick(n);
        std::vector<std::string> input;
        for (auto& p : pick) {
          p = rng() % texts_->size();
          input.push_back((*texts_)[p]);
        }
        const json body = {{"input", input}, {"encoding_format", k % 2 ? "base64" : "float"}};
        const auto r = c.Post("/v1/embeddings", body.dump(), "application/json");
        if (!r || r->status != 200) return -1;
        const json out = json::parse(r->body);
        for (size_t i = 0; i < n; ++i)
          wrong += !SameBits(Vector(out["data"][i]), Ref(pick[i]), kDim);
      }
      return wrong;
    }));
  }
  for (auto& r : results) EXPECT_EQ(r.get(), 0) << "wrong vectors, or a failed request (-1)";
}

// --max-concurrent-requests 1 with a long batching delay: the first request waits in the queue,
// a second is answered 429 with Retry-After; SIGTERM then runs the queued request at once, it is
// answered in full, and the server exits 0. The key comes from the environment variable.
TEST(ServeHttpLifecycle, QueueFullIs429AndSigtermFinishesInFlightWork) {
  RWKV_EMBED_REQUIRE_SHARED(model, kModel);
  const auto texts = Sentences(3);
  const NpyArray ref = EmbedReference(texts, "final", "mean", "l2");
  Server server({"--model", model.string(), "--gemm-path", kGemm, "--max-concurrent-requests", "1",
                 "--max-batch-delay-ms", "60000"},
                "env-key");
  ASSERT_GT(server.port(), 0) << server.Log();
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  ExpectError(server.Client().Post("/embed", R"({"inputs": "a"})", "application/json"), 401,
              "invalid_api_key");
  auto first = std::async(std::launch::async, [&] {
    return server.Client("env-key").Post("/v1/embeddings", json{{"input", texts}}.dump(),
                                         "application/json");
  });
  auto c = server.Client("env-key");
  bool queued = false;
  for (int i = 0; i < 6000 && !queued; ++i) {
    const auto m = c.Get("/metrics");
    queued = m && m->body.find("\nte_queue_size 1\n") != std::string::npos;
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(queued) << server.Log();
  const auto second = c.Post("/v1/embeddings", R"({"input": "b"})", "application/json");
  ExpectError(second, 429, "overloaded");
  EXPECT_EQ(second->get_header_value("Retry-After"), "1");
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
  const auto r = first.get();
  ASSERT_TRUE(r) << server.Log();
  ASSERT_EQ(r->status, 200) << r->body;
  const json out = json::parse(r->body);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_TRUE(SameBits(Vector(out["data"][i]), ref.data.data() + i * int64_t{128}, int64_t{128}));
  }
  EXPECT_NE(server.Log().find("serve: stopped"), std::string::npos) << server.Log();
}

// While the model loads, /health and every route answer 503; SIGTERM then still exits 0.
TEST(ServeHttpLifecycle, LoadingIs503) {
  RWKV_EMBED_REQUIRE_SHARED(model, kModel);
  Server server({"--model", model.string(), "--load-delay-ms", "3000"});
  ASSERT_GT(server.port(), 0) << server.Log();
  auto c = server.Client();
  ExpectError(c.Get("/health"), 503, "unavailable");
  ExpectError(c.Post("/v1/embeddings", R"({"input": "a"})", "application/json"), 503,
              "unavailable");
  ExpectError(c.Post("/embed", R"({"inputs": "a"})", "application/json"), 503, "unavailable");
  ExpectError(c.Get("/info"), 503, "unavailable");
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

// A model that fails to load ends the server with the library's error and exit code (the port
// was already open: the HTTP and signal threads must be wound down, not left hanging).
TEST(ServeHttpLifecycle, LoadFailureExitsWithTheErrorsCode) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  const auto dir = testing::TempDir();
  std::ofstream(dir / "config.json") << "{\"model_type\": \"rwkv6\"";  // truncated JSON
  const auto run =
      RunCli({"serve", "--model", dir.string(), "--vocab", vocab.string(), "--port", "0"});
  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_NE(run.err.find("listening on"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("config.json"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace rwkv_embed
