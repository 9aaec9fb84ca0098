#include "serve/batcher.h"

#include <algorithm>

namespace rwkv_embed::serve {

using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

EmbedResult SliceRows(const EmbedResult& batch, int64_t first, int64_t count) {
  EmbedResult out;
  out.layers = batch.layers;
  for (const Matrix& m : batch.embeddings) {
    Matrix rows(count, m.cols());
    std::copy(m.Row(first), m.Row(first) + count * m.cols(), rows.Row(0));
    out.embeddings.push_back(std::move(rows));
  }
  out.empty.assign(batch.empty.begin() + first, batch.empty.begin() + first + count);
  return out;
}

Batcher::Batcher(EmbedTokensFn run, BatcherOptions options, Metrics* metrics)
    : run_(std::move(run)), options_(options), metrics_(metrics), worker_([this] { Loop(); }) {}

Batcher::~Batcher() { Stop(); }

std::future<EmbedResult> Batcher::Submit(std::vector<std::vector<int32_t>> ids,
                                         EmbedOptions options) {
  auto job = std::make_unique<Job>();
  for (const auto& t : ids) job->tokens += static_cast<int64_t>(t.size());
  job->ids = std::move(ids);
  job->options = std::move(options);
  job->enqueued = Clock::now();
  std::future<EmbedResult> future = job->promise.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_) throw Unavailable("the server is shutting down");
    if (admitted_ >= options_.max_concurrent_requests) {
      throw Overloaded("the server is busy: " + std::to_string(admitted_) +
                       " requests queued or running (--max-concurrent-requests " +
                       std::to_string(options_.max_concurrent_requests) + "); retry shortly");
    }
    ++admitted_;
    queue_.push_back(std::move(job));
    if (metrics_ != nullptr) metrics_->SetQueueSize(static_cast<int64_t>(queue_.size()));
  }
  arrived_.notify_all();
  return future;
}

void Batcher::Drain() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = true;
  }
  arrived_.notify_all();
}

void Batcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = stopping_ = true;
  }
  arrived_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(queue_.size());
}

// Waits for the oldest job, then up to max_batch_delay after its arrival for the batch to fill,
// and takes the queued jobs with its options that fit the token budget (the oldest always goes,
// even alone over budget). Empty when stopping with nothing queued.
std::vector<std::unique_ptr<Batcher::Job>> Batcher::NextBatch(std::unique_lock<std::mutex>& lock) {
  arrived_.wait(lock, [&] { return !queue_.empty() || stopping_; });
  if (queue_.empty()) return {};
  const EmbedOptions key = queue_.front()->options;
  const auto deadline = queue_.front()->enqueued + options_.max_batch_delay;
  auto tokens_ready = [&] {
    int64_t tokens = 0;
    for (const auto& j : queue_) {
      if (j->options == key) tokens += j->tokens;
    }
    return tokens;
  };
  while (!draining_ && tokens_ready() < options_.max_batch_tokens &&
         arrived_.wait_until(lock, deadline) != std::cv_status::timeout) {
  }
  std::vector<std::unique_ptr<Job>> batch;
  int64_t tokens = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    const bool fits = batch.empty() || tokens + (*it)->tokens <= options_.max_batch_tokens;
    if ((*it)->options == key && fits) {
      tokens += (*it)->tokens;
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  if (metrics_ != nullptr) metrics_->SetQueueSize(static_cast<int64_t>(queue_.size()));
  return batch;
}

void Batcher::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto batch = NextBatch(lock);
    if (batch.empty()) return;
    lock.unlock();
    Run(batch);
    lock.lock();
  }
}

void Batcher::Run(std::vector<std::unique_ptr<Job>>& batch) {
  const auto start = Clock::now();
  std::vector<std::vector<int32_t>> ids;
  int64_t tokens = 0;
  for (auto& job : batch) {
    if (metrics_ != nullptr) metrics_->ObserveQueue(Seconds(start - job->enqueued));
    tokens += job->tokens;
    ids.insert(ids.end(), job->ids.begin(), job->ids.end());  // kept: a failed batch reruns
  }
  const EmbedRequest request = batch.front()->options.ToEmbedRequest();
  try {
    const EmbedResult result = run_(std::move(ids), request);
    if (metrics_ != nullptr) {
      metrics_->ObserveBatch(static_cast<int64_t>(batch.size()), tokens,
                             Seconds(Clock::now() - start));
    }
    int64_t first = 0;
    for (auto& job : batch) {
      const int64_t n = static_cast<int64_t>(job->ids.size());
      Finish(*job, SliceRows(result, first, n));
      first += n;
    }
  } catch (...) {
    if (batch.size() == 1) {
      Fail(*batch.front(), std::current_exception());
      return;
    }
    // Which request failed (a NaN in one text's vector)? Run each alone, so only it gets the
    // error.
    for (auto& job : batch) {
      std::vector<std::unique_ptr<Job>> one;
      one.push_back(std::move(job));
      Run(one);
    }
  }
}

void Batcher::Finish(Job& job, EmbedResult result) {
  result.tokens = job.tokens;
  job.promise.set_value(std::move(result));
  std::lock_guard<std::mutex> lock(mutex_);
  --admitted_;
}

void Batcher::Fail(Job& job, std::exception_ptr error) {
  job.promise.set_exception(std::move(error));
  std::lock_guard<std::mutex> lock(mutex_);
  --admitted_;
}

}  // namespace rwkv_embed::serve
