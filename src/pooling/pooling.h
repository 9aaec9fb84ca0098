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
void Pool(Pooling pooling, const float* h, int64_t T, int64_t dim, int64_t stride, float* out);

// In-place L2 normalisation; a zero vector stays zero (callers report it as empty).
void NormalizeL2(float* v, int64_t dim);

}  // namespace rwkv_embed
