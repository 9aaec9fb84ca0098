// rwkv-embed serve: an HTTP server for embeddings (OpenAI /v1/embeddings, TEI /embed, /tokenize,
// /health, /info, /metrics) with dynamic batching. Only the HTTP wiring lives here: request
// parsing and responses are src/serve/protocol.h, batching src/serve/batcher.h.
//
// HTTP is Debian's cpp-httplib (libcpp-httplib-dev): a blocking thread-per-connection server is
// all a CPU-bound embedder needs (one worker runs the model; handler threads only parse JSON and
// wait), its API is a few lines, and Debian ships it as a small shared library. Boost.Beast
// would bring Boost.Asio's async machinery and a large dependency for no gain here.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "model/layer_spec.h"
#include "model/rwkv_embedder.h"
#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/protocol.h"

namespace rwkv_embed::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct ServeArgs {
  std::string model, vocab, tokenizer = "world", host = "127.0.0.1", layers = "final",
                            pooling = "mean", normalize = "l2", precision = "f32", gemm_path,
                            api_key, served_model_name;
  int port = 8080, threads = 0;
  bool hf_index = false;
  int64_t batch_tokens = 2048, payload_limit = 2 << 20, max_input_tokens = 8192,
          max_batch_tokens = 16384, max_batch_delay_ms = 2, max_concurrent_requests = 512,
          max_inputs = 2048, load_delay_ms = 0;
};

enum class Phase { kLoading, kReady, kStopping };

struct State {
  explicit State(const ServeArgs& a) : args(a) {}
  const ServeArgs& args;
  serve::ServeConfig config;
  serve::Metrics metrics;
  std::atomic<Phase> phase{Phase::kLoading};
  std::unique_ptr<RwkvEmbedder> embedder;
  std::atomic<serve::Batcher*> batcher{nullptr};
  std::string info;  // GET /info body, fixed once loaded
};

void SendError(State& s, httplib::Response& res, const serve::RequestError& e) {
  res.status = e.status();
  if (e.status() == 429) res.set_header("Retry-After", "1");
  res.set_content(serve::ErrorBody(e), "application/json");
  s.metrics.Failure(e.code());
}

void CheckReady(const State& s) {
  const Phase p = s.phase.load();
  if (p == Phase::kLoading) throw serve::Unavailable("the model is loading");
  if (p == Phase::kStopping) throw serve::Unavailable("the server is shutting down");
}

// Runs `work` (which returns the body and the tokens embedded) with the API key check, the
// metrics and every error mapped to its status.
template <class F>
void Answer(State& s, const char* route, const httplib::Request& req, httplib::Response& res,
            F&& work) {
  const auto t0 = Clock::now();
  s.metrics.Request(route);
  try {
    serve::CheckApiKey(req.get_header_value("Authorization"), s.args.api_key);
    CheckReady(s);
    auto [body, tokens] = work();
    res.set_content(body, "application/json");
    s.metrics.Success(route, std::chrono::duration<double>(Clock::now() - t0).count(), tokens);
  } catch (const serve::RequestError& e) {
    SendError(s, res, e);
  } catch (const NonFiniteEmbeddingError& e) {
    SendError(s, res, serve::RequestError(500, "server_error", "non_finite_embedding", e.what()));
  } catch (const std::bad_alloc&) {
    SendError(s, res, serve::RequestError(503, "server_error", "out_of_memory", "out of memory"));
  } catch (const std::exception& e) {
    SendError(s, res, serve::Internal(e.what()));
  }
}

int64_t Sum(const std::vector<std::vector<int32_t>>& ids) {
  int64_t n = 0;
  for (const auto& t : ids) n += static_cast<int64_t>(t.size());
  return n;
}

void Embeddings(State& s, serve::Route route, const httplib::Request& req, httplib::Response& res) {
  const bool openai = route == serve::Route::kOpenAi;
  Answer(s, openai ? "/v1/embeddings" : "/embed", req, res, [&] {
    const auto request = openai ? serve::ParseOpenAiEmbeddings(req.body, s.config)
                                : serve::ParseTeiEmbed(req.body, s.config);
    auto ids = serve::PrepareTokens(request, s.embedder->tokenizer(), s.config);
    const int64_t tokens = Sum(ids);
    serve::Batcher* batcher = s.batcher.load();
    if (batcher == nullptr) throw serve::Unavailable("the model is loading");
    const EmbedResult result = batcher->Submit(std::move(ids), request.options).get();
    return std::pair(openai ? serve::OpenAiEmbeddingsResponse(request, result, tokens, s.config)
                            : serve::TeiEmbedResponse(request, result),
                     tokens);
  });
}

void Tokenize(State& s, const httplib::Request& req, httplib::Response& res) {
  Answer(s, "/tokenize", req, res, [&] {
    const auto request = serve::ParseTokenize(req.body, s.config);
    std::vector<std::vector<int32_t>> ids;
    for (const auto& t : request.texts) ids.push_back(s.embedder->tokenizer().Encode(t));
    return std::pair(serve::TokenizeResponse(request, ids, s.embedder->tokenizer()), int64_t{0});
  });
}

std::string ModelName(const ServeArgs& a) {
  if (!a.served_model_name.empty()) return a.served_model_name;
  std::filesystem::path p(a.model);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string InfoBody(const State& s) {
  const ServeArgs& a = s.args;
  nlohmann::json layers = nlohmann::json::array();
  for (int l : s.config.layers) layers.push_back(l);
  const nlohmann::json info = {
      {"model_id", s.config.model_name},
      {"model_path", a.model},
      {"description", s.embedder->Description()},
      {"tokenizer", s.embedder->tokenizer().Describe()},
      {"dim", s.config.dim},
      {"num_blocks", s.config.numbering.num_blocks},
      {"layer_range", {0, s.config.numbering.last()}},
      {"layers", layers},
      {"pooling", PoolingName(s.config.pooling)},
      {"normalize", NormalizationName(s.config.normalization)},
      {"precision", a.precision},
      {"max_input_tokens", a.max_input_tokens},
      {"max_inputs", a.max_inputs},
      {"max_batch_tokens", a.max_batch_tokens},
      {"max_batch_delay_ms", a.max_batch_delay_ms},
      {"max_concurrent_requests", a.max_concurrent_requests},
      {"payload_limit", a.payload_limit},
      {"auth", !a.api_key.empty()},
      {"version", RWKV_EMBED_VERSION},
  };
  return info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Routes(httplib::Server& svr, State& s) {
  svr.Post("/v1/embeddings", [&s](const httplib::Request& req, httplib::Response& res) {
    Embeddings(s, serve::Route::kOpenAi, req, res);
  });
  svr.Post("/embed", [&s](const httplib::Request& req, httplib::Response& res) {
    Embeddings(s, serve::Route::kTei, req, res);
  });
  svr.Post("/tokenize",
           [&s](const httplib::Request& req, httplib::Response& res) { Tokenize(s, req, res); });
  // /health needs no key (load balancers probe it): 200 once the model is loaded.
  svr.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    try {
      CheckReady(s);
      res.set_content(R"({"status":"ok"})", "application/json");
    } catch (const serve::RequestError& e) {
      SendError(s, res, e);
    }
  });
  svr.Get("/info", [&s](const httplib::Request& req, httplib::Response& res) {
    Answer(s, "/info", req, res, [&] { return std::pair(s.info, int64_t{0}); });
  });
  svr.Get("/metrics", [&s](const httplib::Request& req, httplib::Response& res) {
    try {
      serve::CheckApiKey(req.get_header_value("Authorization"), s.args.api_key);
      res.set_content(s.metrics.Render(), "text/plain; version=0.0.4");
    } catch (const serve::RequestError& e) {
      SendError(s, res, e);
    }
  });
  // Statuses httplib sets itself (413 over --payload-limit, 404, 400 for broken HTTP) get the
  // same JSON error body as ours.
  svr.set_error_handler(httplib::Server::HandlerWithResponse(
      [&s](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        // httplib caps form-encoded bodies at 8192 bytes whatever the limit (curl -d sends that
        // type).
        const bool form =
            req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded");
        const std::string message =
            res.status == 413
                ? (form ? std::string("a form-encoded body is limited to 8192 bytes: send "
                                      "Content-Type: application/json")
                        : "request body over --payload-limit " +
                              std::to_string(s.args.payload_limit) + " bytes")
            : res.status == 404 ? "no such route (POST /v1/embeddings, /embed, /tokenize; GET "
                                  "/health, /info, /metrics)"
                                : std::string("HTTP ") + std::to_string(res.status);
        res.set_content(serve::ErrorBody(res.status, message), "application/json");
        s.metrics.Failure(res.status == 413 ? "payload_too_large" : std::to_string(res.status));
        return httplib::Server::HandlerResponse::Handled;
      }));
}

void Load(State& s) {
  const ServeArgs& a = s.args;
  std::this_thread::sleep_for(std::chrono::milliseconds(a.load_delay_ms));
  RwkvEmbedderOptions options;
  options.batch_tokens = a.batch_tokens;
  options.precision =
      a.precision == "bf16" ? kernels::MatMulPrecision::kBF16 : kernels::MatMulPrecision::kF32;
  s.embedder =
      RwkvEmbedder::Load(a.model, a.vocab, options, {},
                         a.tokenizer == "bytes" ? TokenizerKind::kBytes : TokenizerKind::kWorld);
  serve::ServeConfig& c = s.config;
  c.model_name = ModelName(a);
  c.numbering = s.embedder->layer_numbering();
  c.dim = s.embedder->Dim();
  c.vocab_size =
      std::min<int64_t>(s.embedder->model().vocab_size(), s.embedder->tokenizer().vocab_size());
  c.layers = ParseLayerSpec(a.layers, c.numbering, a.hf_index);
  c.pooling = ParsePooling(a.pooling);
  c.normalization = ParseNormalization(a.normalize);
  c.max_input_tokens = a.max_input_tokens;
  c.max_inputs = a.max_inputs;
  s.info = InfoBody(s);
}

void CheckArgs(const ServeArgs& a) {
  if (a.precision != "f32" && a.precision != "bf16") {
    throw UsageError("--precision must be f32 or bf16");
  }
  if (a.tokenizer != "world" && a.tokenizer != "bytes") {
    throw UsageError("--tokenizer must be world or bytes");
  }
  ParsePooling(a.pooling);
  ParseNormalization(a.normalize);
  if (!std::filesystem::exists(a.model)) throw IoError("--model " + a.model + " not found");
}

// Debian's cpp-httplib 0.11 listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into
// the library): when 64 clients connect at once the kernel drops the handshakes beyond it and the
// clients retry with exponential backoff, so a request could wait 30 s before the server saw it.
// listen() again on the bound socket (found by its port) raises the backlog.
void RaiseListenBacklog(int port) {
  for (int fd = 0; fd < 4096; ++fd) {
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || accepting == 0) {
      continue;
    }
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) continue;
    int bound = -1;
    if (addr.ss_family == AF_INET) {
      sockaddr_in in4{};
      std::memcpy(&in4, &addr, sizeof(in4));
      bound = ntohs(in4.sin_port);
    } else if (addr.ss_family == AF_INET6) {
      sockaddr_in6 in6{};
      std::memcpy(&in6, &addr, sizeof(in6));
      bound = ntohs(in6.sin6_port);
    }
    if (bound == port) listen(fd, SOMAXCONN);
  }
}

// The write end is written by OnStopSignal (write(2) is async-signal-safe), the read end read by
// the thread that stops the server.
int g_stop_pipe[2] = {-1, -1};
constexpr int kLoadFailed = 0;  // not a signal: loading failed, stop without a message

extern "C" void OnStopSignal(int sig) {
  const auto byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t written = write(g_stop_pipe[1], &byte, 1);
}

int RunServe(const ServeArgs& a) {
  CheckArgs(a);
  ApplyThreads(a.threads);
  ApplyGemmPath(a.gemm_path);
  // SIGTERM/SIGINT reach one thread through a pipe: it stops accepting, lets the batcher run what
  // is queued at once, and makes listen() return once every in-flight request is answered. A
  // handler, not a blocked-signal mask: threads started before main (OpenBLAS's pool) would not
  // carry the mask, and a signal delivered to one of them killed the server.
  if (g_stop_pipe[0] < 0 && pipe(g_stop_pipe) != 0) {
    throw IoError(std::string("serve: cannot create the signal pipe: ") + std::strerror(errno));
  }
  struct sigaction on_stop {};
  on_stop.sa_handler = OnStopSignal;
  sigemptyset(&on_stop.sa_mask);
  on_stop.sa_flags = SA_RESTART;
  for (const int sig : {SIGTERM, SIGINT}) sigaction(sig, &on_stop, nullptr);

  State s(a);
  httplib::Server svr;
  const size_t handlers =
      static_cast<size_t>(std::min<int64_t>(a.max_concurrent_requests, 4096)) + 8;
  svr.new_task_queue = [handlers] { return new httplib::ThreadPool(handlers); };
  svr.set_payload_max_length(static_cast<size_t>(a.payload_limit));
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(1 << 20);
  Routes(svr, s);
  const int port = a.port == 0 ? svr.bind_to_any_port(a.host) : a.port;
  if (port <= 0 || (a.port != 0 && !svr.bind_to_port(a.host, a.port))) {
    throw IoError("cannot listen on " + a.host + ":" + std::to_string(a.port) +
                  " (address in use or not local?)");
  }
  RaiseListenBacklog(port);
  std::thread signals([&] {
    unsigned char signal_number = 0;
    while (read(g_stop_pipe[0], &signal_number, 1) < 0 && errno == EINTR) {
    }
    const int sig = signal_number;
    if (s.phase.exchange(Phase::kStopping) != Phase::kStopping && sig != kLoadFailed) {
      std::fprintf(stderr, "serve: %s: finishing in-flight requests\n", strsignal(sig));
    }
    if (serve::Batcher* b = s.batcher.load()) b->Drain();
    svr.stop();
  });
  std::thread http([&] { svr.listen_after_bind(); });
  std::fprintf(stderr, "serve: listening on http://%s:%d (loading %s)\n", a.host.c_str(), port,
               a.model.c_str());
  std::unique_ptr<serve::Batcher> batcher;
  try {
    Load(s);
    batcher = std::make_unique<serve::Batcher>(
        [&s](std::vector<std::vector<int32_t>> ids, const EmbedRequest& request) {
          // OpenMP's thread count is per calling thread: the worker's must be set in the worker.
          ApplyThreads(s.args.threads);
          return s.embedder->EmbedTokens(std::move(ids), request);
        },
        serve::BatcherOptions{a.max_batch_tokens, std::chrono::milliseconds(a.max_batch_delay_ms),
                              a.max_concurrent_requests},
        &s.metrics);
    s.batcher = batcher.get();
    Phase loading = Phase::kLoading;
    if (s.phase.compare_exchange_strong(loading, Phase::kReady)) {
      std::fprintf(stderr, "serve: ready (%s, dim %lld)\n", s.config.model_name.c_str(),
                   static_cast<long long>(s.config.dim));
    } else {
      batcher->Drain();  // a signal came while loading
    }
  } catch (...) {
    s.phase = Phase::kStopping;
    OnStopSignal(kLoadFailed);  // wakes the signal thread
    http.join();
    signals.join();
    throw;
  }
  http.join();
  signals.join();
  batcher->Stop();
  std::fprintf(stderr, "serve: stopped\n");
  return 0;
}

}  // namespace

Command RegisterServe(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* sub = app.add_subcommand(
      "serve",
      "HTTP server: OpenAI /v1/embeddings, TEI /embed, /tokenize, /health, /info, /metrics");
  sub->add_option("--model", a->model, "model folder or checkpoint file (RWKV-6 or RWKV-7)")
      ->required();
  sub->add_option("--vocab", a->vocab, "vocabulary file (default: as for embed)");
  sub->add_option("--tokenizer", a->tokenizer, "world | bytes")->capture_default_str();
  sub->add_option("--host", a->host, "address to bind (loopback by default)")
      ->capture_default_str();
  sub->add_option("--port", a->port, "port (0 = any free port, printed on stderr)")
      ->capture_default_str()
      ->check(IntegerIn(0, 65535));
  sub->add_option("--layers", a->layers,
                  "default layers: all | final | blocks | 1,3,5 | 0-4 (requests may override)")
      ->capture_default_str();
  sub->add_flag("--hf-index", a->hf_index, "read --layers as HF hidden_states indices");
  sub->add_option("--pooling", a->pooling,
                  "default pooling: mean | max | first | last | weighted-mean | mean-sqrt-len")
      ->capture_default_str();
  sub->add_option("--normalize", a->normalize, "default normalisation: l2 | none")
      ->capture_default_str();
  sub->add_option("--precision", a->precision, "matmul precision: f32 | bf16")
      ->capture_default_str();
  sub->add_option("--batch-tokens", a->batch_tokens, "tokens per forward pass (scratch memory)")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--max-batch-tokens", a->max_batch_tokens,
                  "tokens gathered from queued requests into one embedding call")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--max-batch-delay-ms", a->max_batch_delay_ms,
                  "longest wait after a request arrives for others to batch with it")
      ->capture_default_str()
      ->check(IntegerIn(0, 60000));
  sub->add_option("--max-concurrent-requests", a->max_concurrent_requests,
                  "requests queued or running at once; more are answered 429")
      ->capture_default_str()
      ->check(IntegerIn(1, 65536));
  sub->add_option("--max-input-tokens", a->max_input_tokens,
                  "tokens per input text; longer is 422 unless the request sets truncate")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--max-inputs", a->max_inputs, "input texts per request")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--payload-limit", a->payload_limit, "largest request body in bytes (413)")
      ->capture_default_str()
      ->check(IntegerIn(1, int64_t{1} << 40));
  sub->add_option("--api-key", a->api_key,
                  "require 'Authorization: Bearer KEY' (all routes but /health)")
      ->envname("RWKV_EMBED_API_KEY");
  sub->add_option("--served-model-name", a->served_model_name,
                  "\"model\" in responses (default: the model folder's name)");
  // For tests of the loading phase (503 from /health and every route): the tiny models load
  // too fast to be caught loading.
  sub->add_option("--load-delay-ms", a->load_delay_ms, "wait this long before loading (testing)")
      ->check(IntegerIn(0, 600000))
      ->group("");
  AddThreadsOption(sub, &a->threads);
  AddGemmPathOption(sub, &a->gemm_path);
  return {sub, [a] { return RunServe(*a); }};
}

}  // namespace rwkv_embed::cli
