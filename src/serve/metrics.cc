#include "serve/metrics.h"

#include <algorithm>
#include <charconv>

namespace rwkv_embed::serve {
namespace {

std::vector<double> Exponential(double start, double factor, int n) {
  std::vector<double> b;
  for (double v = start; n-- > 0; v *= factor) b.push_back(v);
  return b;
}

std::string Number(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

void Header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Counter(std::string& out, const std::string& name, const char* label, const char* help,
             const std::map<std::string, uint64_t>& values) {
  Header(out, name, "counter", help);
  for (const auto& [key, v] : values) {
    out += name + "{" + label + "=\"" + key + "\"} " + std::to_string(v) + "\n";
  }
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::Render(std::string& out, const std::string& name) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + Number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + Number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : request_duration_(Exponential(0.001, 2, 16)),
      queue_duration_(Exponential(0.0001, 2, 18)),
      inference_duration_(Exponential(0.001, 2, 16)),
      input_length_(Exponential(1, 2, 16)),
      batch_size_(Exponential(1, 2, 10)),
      batch_tokens_(Exponential(1, 2, 18)) {}

void Metrics::Request(const std::string& route) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[route];
}

void Metrics::Success(const std::string& route, double seconds, int64_t input_tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++successes_[route];
  request_duration_.Observe(seconds);
  if (input_tokens > 0) {
    input_length_.Observe(static_cast<double>(input_tokens));
    tokens_ += static_cast<uint64_t>(input_tokens);
  }
}

void Metrics::Failure(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++failures_[reason];
}

void Metrics::ObserveQueue(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_duration_.Observe(seconds);
}

void Metrics::ObserveBatch(int64_t requests, int64_t tokens, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_size_.Observe(static_cast<double>(requests));
  batch_tokens_.Observe(static_cast<double>(tokens));
  inference_duration_.Observe(seconds);
}

void Metrics::SetQueueSize(int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_size_ = n;
}

std::string Metrics::Render() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  Counter(out, "te_request_count", "method", "Requests received, by route", requests_);
  Counter(out, "te_request_success", "method", "Requests answered with 200, by route", successes_);
  Counter(out, "te_request_failure", "err", "Requests answered with an error, by error code",
          failures_);
  Header(out, "te_request_duration", "histogram", "Request duration in seconds (successes)");
  request_duration_.Render(out, "te_request_duration");
  Header(out, "te_request_queue_duration", "histogram", "Seconds a request waited for its batch");
  queue_duration_.Render(out, "te_request_queue_duration");
  Header(out, "te_batch_inference_duration", "histogram", "Seconds per forward call (one batch)");
  inference_duration_.Render(out, "te_batch_inference_duration");
  Header(out, "te_request_input_length", "histogram", "Tokens per embedding request");
  input_length_.Render(out, "te_request_input_length");
  Header(out, "te_batch_inference_size", "histogram", "Requests per batch");
  batch_size_.Render(out, "te_batch_inference_size");
  Header(out, "te_batch_inference_tokens", "histogram", "Tokens per batch");
  batch_tokens_.Render(out, "te_batch_inference_tokens");
  Header(out, "te_embed_tokens_total", "counter", "Tokens embedded (successful requests)");
  out += "te_embed_tokens_total " + std::to_string(tokens_) + "\n";
  Header(out, "te_queue_size", "gauge", "Requests waiting for a batch");
  out += "te_queue_size " + std::to_string(queue_size_) + "\n";
  return out;
}

}  // namespace rwkv_embed::serve
