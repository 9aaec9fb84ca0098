#include "analysis/token_statistics.h"

#include <algorithm>
#include <exception>
#include <string>

#include "analysis/linalg.h"
#include "analysis/statistics.h"
#include "core/error.h"

namespace rwkv_embed::analysis {

TokenStatistics::TokenStatistics(std::vector<int> layers, std::vector<int64_t> lengths, int64_t dim,
                                 TokenStatisticsOptions options)
    : layers_(std::move(layers)),
      lengths_(std::move(lengths)),
      dim_(dim),
      options_(options),
      entropy_sum_(layers_.size(), 0.0),
      angle_mean_sum_(layers_.size(), 0.0),
      results_(layers_.size()) {
  RenyiEntropy({}, options_.alpha);  // rejects a bad alpha up front
  for (int64_t n : lengths_) over_cap_ += n > options_.max_text_tokens ? 1 : 0;
}

void TokenStatistics::Add(int64_t text, int layer, int64_t first, const float* rows, int64_t T) {
  const auto it = std::find(layers_.begin(), layers_.end(), layer);
  if (it == layers_.end())
    throw UsageError("token statistics: layer " + std::to_string(layer) + " was not requested");
  if (text < 0 || text >= static_cast<int64_t>(lengths_.size())) {
    throw UsageError("token statistics: text " + std::to_string(text) + " out of range");
  }
  const int64_t length = lengths_[text];
  if (length > options_.max_text_tokens) return;
  const int li = static_cast<int>(it - layers_.begin());
  const std::pair<int64_t, int> key{text, li};
  std::vector<float>& buffer = partial_[key];
  if (first != static_cast<int64_t>(buffer.size()) / dim_ || first + T > length) {
    throw UsageError("token statistics: text " + std::to_string(text) + " layer " +
                     std::to_string(layer) + ": piece at " + std::to_string(first) +
                     " out of order");
  }
  buffer.insert(buffer.end(), rows, rows + T * dim_);
  if (first + T < length) return;  // more pieces to come
  queued_floats_ += static_cast<int64_t>(buffer.size());
  Job job;
  job.layer_index = li;
  job.rows = std::move(buffer);
  job.tokens = length;
  queue_.push_back(std::move(job));
  partial_.erase(key);
  if (queued_floats_ >= options_.queue_floats) Flush();
}

void TokenStatistics::Flush() {
  const int64_t n = static_cast<int64_t>(queue_.size());
  const SingleThreadedBlas one_thread;  // the texts are the parallel dimension
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < n; ++i) {
    Job& j = queue_[i];
    const RowSet x{j.rows.data(), j.tokens, dim_, 0};
    try {
      if (j.tokens >= 2) j.entropy = MatrixEntropy(x, options_.alpha);
      const AngleSum a = TrajectoryAngles(x);
      j.angle_sum = a.sum;
      j.angles = a.count;
    } catch (const std::exception& e) {
      j.error = e.what();
    }
  }
  for (const Job& j : queue_) {
    if (!j.error.empty()) throw NumericError("token statistics: " + j.error);
  }
  // Summed in arrival order: the same result for any thread count.
  for (const Job& j : queue_) {
    TokenLayerStatistics& r = results_[j.layer_index];
    if (j.tokens >= 2) {
      entropy_sum_[j.layer_index] += j.entropy;
      ++r.prompt_entropy_texts;
    }
    if (j.angles > 0) {
      angle_mean_sum_[j.layer_index] += j.angle_sum / static_cast<double>(j.angles);
      ++r.curvature_texts;
    }
  }
  queue_.clear();
  queued_floats_ = 0;
}

void TokenStatistics::Finish() {
  Flush();
  if (!partial_.empty()) {
    throw UsageError("token statistics: text " + std::to_string(partial_.begin()->first.first) +
                     " is incomplete");
  }
  for (size_t li = 0; li < layers_.size(); ++li) {
    TokenLayerStatistics& r = results_[li];
    r.prompt_entropy = r.prompt_entropy_texts > 0
                           ? entropy_sum_[li] / static_cast<double>(r.prompt_entropy_texts)
                           : 0.0;
    r.curvature =
        r.curvature_texts > 0 ? angle_mean_sum_[li] / static_cast<double>(r.curvature_texts) : 0.0;
  }
}

}  // namespace rwkv_embed::analysis
