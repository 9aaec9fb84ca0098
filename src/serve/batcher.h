// Dynamic batching for the server: one worker thread owns the embedder (RwkvEmbedder is not
// thread-safe) and runs ONE EmbedTokens call over the texts of every request that arrived
// together. Requests wait in a bounded queue; the worker takes the oldest request and every
// queued request with the same embedding options (layers, pooling, normalize: one call computes
// one set), up to max_batch_tokens, waiting at most max_batch_delay for more to arrive, and splits
// the results per request. The engine's batches are packed without padding and each text's
// recurrence starts from zero, so a text's vector does not depend on its neighbours: the results
// are those of `rwkv-embed embed`, bit for bit, whatever the mix.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/embedder.h"
#include "serve/metrics.h"
#include "serve/protocol.h"

namespace rwkv_embed::serve {

// Runs one forward call: ids of every text, in order -> one row per text and requested layer.
using EmbedTokensFn =
    std::function<EmbedResult(std::vector<std::vector<int32_t>> ids, const EmbedRequest& request)>;

struct BatcherOptions {
  int64_t max_batch_tokens = 16384;  // tokens per EmbedTokens call (a larger request runs alone)
  std::chrono::microseconds max_batch_delay{std::chrono::milliseconds(2)};
  int64_t max_concurrent_requests = 512;  // admitted and not yet answered; more get 429
};

class Batcher {
 public:
  Batcher(EmbedTokensFn run, BatcherOptions options, Metrics* metrics = nullptr);
  ~Batcher();  // Stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues one request's texts. Throws Overloaded (429) when max_concurrent_requests are already
  // admitted, Unavailable (503) once Drain() or Stop() was called. The future yields the rows of
  // exactly these texts, or the error their forward pass threw.
  std::future<EmbedResult> Submit(std::vector<std::vector<int32_t>> ids, EmbedOptions options);

  // Stops admitting and stops waiting for batches to fill: everything queued runs at once.
  void Drain();
  // Drain(), then waits until every admitted request is answered and joins the worker.
  void Stop();

  int64_t queued() const;

 private:
  struct Job {
    std::vector<std::vector<int32_t>> ids;
    EmbedOptions options;
    int64_t tokens = 0;
    std::chrono::steady_clock::time_point enqueued;
    std::promise<EmbedResult> promise;
  };

  void Loop();
  std::vector<std::unique_ptr<Job>> NextBatch(std::unique_lock<std::mutex>& lock);
  void Run(std::vector<std::unique_ptr<Job>>& batch);
  void Finish(Job& job, EmbedResult result);
  void Fail(Job& job, std::exception_ptr error);

  EmbedTokensFn run_;
  BatcherOptions options_;
  Metrics* metrics_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<std::unique_ptr<Job>> queue_;
  int64_t admitted_ = 0;  // queued + running
  bool draining_ = false, stopping_ = false;
  std::thread worker_;
};

// Rows [first, first + count) of every layer of `batch`: one request's share of a batch.
EmbedResult SliceRows(const EmbedResult& batch, int64_t first, int64_t count);

}  // namespace rwkv_embed::serve
