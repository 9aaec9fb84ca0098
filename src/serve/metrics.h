// Prometheus metrics of the server, named after Hugging Face text-embeddings-inference's `te_*`
// metrics so that its dashboards apply: request counts by route, successes, failures by reason,
// request / queue / inference duration histograms, input lengths in tokens, batch sizes and
// tokens, queue depth. Thread-safe; Render() gives the text exposition format (GET /metrics).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace rwkv_embed::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // `name`_bucket{le=...}, `name`_sum, `name`_count lines (cumulative buckets, +Inf last).
  void Render(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = above every bound
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void Request(const std::string& route);
  void Success(const std::string& route, double seconds, int64_t input_tokens);
  void Failure(const std::string& reason);  // the error code: validation_error, overloaded, ...
  void ObserveQueue(double seconds);
  void ObserveBatch(int64_t requests, int64_t tokens, double seconds);
  void SetQueueSize(int64_t n);
  std::string Render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> requests_, successes_, failures_;
  Histogram request_duration_, queue_duration_, inference_duration_, input_length_, batch_size_,
      batch_tokens_;
  int64_t queue_size_ = 0;
  uint64_t tokens_ = 0;
};

}  // namespace rwkv_embed::serve
