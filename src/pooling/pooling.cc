#include "pooling/pooling.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace rwkv_embed {
namespace {

struct PoolingEntry {
  Pooling pooling;
  std::string_view name;
};
constexpr PoolingEntry kPoolings[] = {
    {Pooling::kMean, "mean"},
    {Pooling::kMax, "max"},
    {Pooling::kFirst, "first"},
    {Pooling::kLast, "last"},
    {Pooling::kWeightedMean, "weighted-mean"},
    {Pooling::kMeanSqrtLen, "mean-sqrt-len"},
};

}  // namespace

Pooling ParsePooling(std::string_view name) {
  for (const auto& e : kPoolings) {
    if (e.name == name) return e.pooling;
  }
  // Aliases used by sentence-transformers.
  if (name == "cls") return Pooling::kFirst;
  if (name == "lasttoken") return Pooling::kLast;
  if (name == "weightedmean") return Pooling::kWeightedMean;
  std::string valid;
  for (const auto& e : kPoolings) valid += (valid.empty() ? "" : "|") + std::string(e.name);
  throw UsageError("unknown pooling '" + std::string(name) + "' (valid: " + valid + ")");
}

std::string_view PoolingName(Pooling p) {
  for (const auto& e : kPoolings) {
    if (e.pooling == p) return e.name;
  }
  return "?";
}

std::vector<std::string> PoolingNames() {
  std::vector<std::string> names;
  for (const auto& e : kPoolings) names.emplace_back(e.name);
  return names;
}

Normalization ParseNormalization(std::string_view name) {
  if (name == "none") return Normalization::kNone;
  if (name == "l2") return Normalization::kL2;
  throw UsageError("unknown normalization '" + std::string(name) + "' (valid: none|l2)");
}

std::string_view NormalizationName(Normalization n) {
  return n == Normalization::kL2 ? "l2" : "none";
}

void Pool(Pooling pooling, const float* h, int64_t T, int64_t dim, int64_t stride, float* out) {
  PoolingAccumulator acc(pooling, dim);
  acc.Add(h, T, stride);
  acc.Finish(out);
}

namespace {

bool IsMeanKind(Pooling p) {
  return p == Pooling::kMean || p == Pooling::kWeightedMean || p == Pooling::kMeanSqrtLen;
}

}  // namespace

PoolingAccumulator::PoolingAccumulator(Pooling pooling, int64_t dim)
    : pooling_(pooling), dim_(dim) {
  // Sums in double so long inputs do not drift.
  if (IsMeanKind(pooling)) {
    sum_.assign(dim, 0.0);
  } else {
    row_.assign(dim, 0.0f);
  }
}

void PoolingAccumulator::Add(const float* h, int64_t T, int64_t stride) {
  assert(T >= 1);
  switch (pooling_) {
    case Pooling::kFirst:
      if (count_ == 0) std::copy(h, h + dim_, row_.begin());
      break;
    case Pooling::kLast:
      std::copy(h + (T - 1) * stride, h + (T - 1) * stride + dim_, row_.begin());
      break;
    case Pooling::kMax: {
      int64_t t = 0;
      if (count_ == 0) {
        std::copy(h, h + dim_, row_.begin());
        t = 1;
      }
      for (; t < T; ++t) {
        for (int64_t c = 0; c < dim_; ++c) row_[c] = std::fmax(row_[c], h[t * stride + c]);
      }
      break;
    }
    case Pooling::kMean:
    case Pooling::kWeightedMean:
    case Pooling::kMeanSqrtLen:
      // Weights per sentence-transformers: position t (0-based, over the whole sequence) weighs
      // t + 1 in weighted-mean, 1 otherwise.
      for (int64_t t = 0; t < T; ++t) {
        const double w =
            pooling_ == Pooling::kWeightedMean ? static_cast<double>(count_ + t + 1) : 1.0;
        total_weight_ += w;
        const float* row = h + t * stride;
        for (int64_t c = 0; c < dim_; ++c) sum_[c] += w * row[c];
      }
      break;
  }
  count_ += T;
}

void PoolingAccumulator::Finish(float* out) const {
  assert(count_ >= 1);
  if (!IsMeanKind(pooling_)) {
    std::copy(row_.begin(), row_.end(), out);
    return;
  }
  const double denom =
      pooling_ == Pooling::kMeanSqrtLen ? std::sqrt(static_cast<double>(count_)) : total_weight_;
  for (int64_t c = 0; c < dim_; ++c) out[c] = static_cast<float>(sum_[c] / denom);
}

int64_t FirstNonFiniteRow(const float* h, int64_t T, int64_t dim, int64_t stride) {
  for (int64_t t = 0; t < T; ++t) {
    // Bit test (NaN and Inf are the all-ones exponent): branch-free, so it vectorises.
    uint32_t bad = 0;
    const float* row = h + t * stride;
    for (int64_t c = 0; c < dim; ++c) {
      uint32_t bits;
      std::memcpy(&bits, row + c, sizeof(bits));
      bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad != 0) return t;
  }
  return -1;
}

void NormalizeL2(float* v, int64_t dim) {
  double ss = 0;
  for (int64_t c = 0; c < dim; ++c) ss += static_cast<double>(v[c]) * v[c];
  if (ss == 0) return;
  const double inv = 1.0 / std::sqrt(ss);
  for (int64_t c = 0; c < dim; ++c) v[c] = static_cast<float>(v[c] * inv);
}

}  // namespace rwkv_embed
