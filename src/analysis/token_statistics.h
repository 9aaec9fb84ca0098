// Per-text statistics of token trajectories (prompt entropy, curvature) from token states that
// arrive piece by piece, as a model's token tap delivers them: a long text may come in several
// pieces, each layer's pieces in order. A text is analysed when its last piece for a layer
// arrives; finished texts are queued and analysed in parallel batches (OpenMP), so memory holds
// only the queue (bounded by queue_floats) and the texts still in flight, never a split's tokens.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rwkv_embed::analysis {

struct TokenStatisticsOptions {
  double alpha = 1.0;  // Rényi order of the prompt entropy
  // Texts longer than this are left out of both statistics (counted): a text's T x T Gram
  // matrix and its buffered token states grow with T.
  int64_t max_text_tokens = 4096;
  // Finished texts are analysed once this many floats are queued (and at Finish).
  int64_t queue_floats = int64_t{1} << 24;
};

// Per layer: prompt entropy = mean over texts with >= 2 tokens of the matrix entropy of their
// token states; curvature = mean over texts with >= 1 angle of their mean turning angle.
struct TokenLayerStatistics {
  double prompt_entropy = 0.0;
  int64_t prompt_entropy_texts = 0;
  double curvature = 0.0;
  int64_t curvature_texts = 0;
};

class TokenStatistics {
 public:
  // `layers`: the layer ids the tap delivers; `lengths[i]`: text i's token count; `dim`: C.
  TokenStatistics(std::vector<int> layers, std::vector<int64_t> lengths, int64_t dim,
                  TokenStatisticsOptions options = {});

  // The tap: rows [T, dim] (row stride dim) are positions first .. first + T - 1 of `text`.
  // UsageError for an unknown layer or text, or pieces out of order.
  void Add(int64_t text, int layer, int64_t first, const float* rows, int64_t T);

  // Analyses what is queued; UsageError when a text is still incomplete. Then the results are
  // final (one per layer, in the constructor's order).
  void Finish();
  const std::vector<TokenLayerStatistics>& results() const { return results_; }
  // Texts over max_text_tokens (left out of every layer).
  int64_t texts_over_cap() const { return over_cap_; }

 private:
  struct Job {
    int layer_index = 0;
    std::vector<float> rows;  // [T, dim]
    int64_t tokens = 0;
    double entropy = 0.0, angle_sum = 0.0;
    int64_t angles = 0;
    std::string error;  // an exception cannot leave an OpenMP loop
  };
  void Flush();

  std::vector<int> layers_;
  std::vector<int64_t> lengths_;
  int64_t dim_;
  TokenStatisticsOptions options_;
  std::map<std::pair<int64_t, int>, std::vector<float>> partial_;  // (text, layer index)
  std::vector<Job> queue_;
  int64_t queued_floats_ = 0;
  std::vector<double> entropy_sum_, angle_mean_sum_;
  std::vector<TokenLayerStatistics> results_;
  int64_t over_cap_ = 0;
};

}  // namespace rwkv_embed::analysis
