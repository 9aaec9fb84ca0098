// Pooling of per-token vectors into one sentence vector. Definitions follow sentence-transformers'
// models/Pooling.py (mean, max, cls/first, lasttoken, weightedmean, mean_sqrt_len_tokens).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv_embed {

enum class Pooling {
  kMean,          // (1/T) sum_t h_t
  kMax,           // max_t h_t[c] per channel
  kFirst,         // h_0 (sentence-transformers "cls")
  kLast,          // h_{T-1} (sentence-transformers "lasttoken"): sees the whole sentence in an RNN
  kWeightedMean,  // sum_t (t+1) h_t / sum_t (t+1)   (SGPT position weighting)
  kMeanSqrtLen,   // sum_t h_t / sqrt(T)
};

enum class Normalization { kNone, kL2 };

Pooling ParsePooling(std::string_view name);  // throws UsageError listing the valid names
std::string_view PoolingName(Pooling p);
std::vector<std::string> PoolingNames();
Normalization ParseNormalization(std::string_view name);
std::string_view NormalizationName(Normalization n);

// Pools the T rows of h ([T, dim], row stride `stride` floats) into out[dim]. T >= 1.
// Same arithmetic as one PoolingAccumulator::Add of all rows followed by Finish.
void Pool(Pooling pooling, const float* h, int64_t T, int64_t dim, int64_t stride, float* out);

// Pooling of a sequence that arrives in consecutive pieces (a long text split across forward
// batches): Add() the pieces in order, then Finish(). The state is what each definition needs
// (mean kinds: a float64 running sum, the weight total and the count; max: the running maximum;
// first: the first row; last: the latest row), and the arithmetic is Pool()'s, in the same order,
// so pooling in pieces is bit-identical to pooling the whole sequence at once.
class PoolingAccumulator {
 public:
  PoolingAccumulator(Pooling pooling, int64_t dim);

  // Appends the T >= 1 rows of h ([T, dim], row stride `stride`): positions count() ..
  // count() + T - 1 of the sequence.
  void Add(const float* h, int64_t T, int64_t stride);
  // Writes the pooled vector of every row added so far; count() >= 1.
  void Finish(float* out) const;
  int64_t count() const { return count_; }

 private:
  Pooling pooling_;
  int64_t dim_;
  int64_t count_ = 0;
  double total_weight_ = 0;
  std::vector<double> sum_;  // mean, weighted-mean, mean-sqrt-len
  std::vector<float> row_;   // max, first, last
};

// Index of the first of the T rows of h ([T, dim], row stride `stride`) that holds a NaN or an
// Inf, or -1 when every value is finite.
int64_t FirstNonFiniteRow(const float* h, int64_t T, int64_t dim, int64_t stride);

// In-place L2 normalisation; a zero vector stays zero (callers report it as empty).
void NormalizeL2(float* v, int64_t dim);

}  // namespace rwkv_embed
