#include "pooling/pooling.h"

#include <cassert>
#include <cmath>

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
  assert(T >= 1);
  switch (pooling) {
    case Pooling::kFirst:
      for (int64_t c = 0; c < dim; ++c) out[c] = h[c];
      return;
    case Pooling::kLast:
      for (int64_t c = 0; c < dim; ++c) out[c] = h[(T - 1) * stride + c];
      return;
    case Pooling::kMax:
      for (int64_t c = 0; c < dim; ++c) out[c] = h[c];
      for (int64_t t = 1; t < T; ++t) {
        for (int64_t c = 0; c < dim; ++c) out[c] = std::fmax(out[c], h[t * stride + c]);
      }
      return;
    case Pooling::kMean:
    case Pooling::kWeightedMean:
    case Pooling::kMeanSqrtLen: {
      // Sum in double so long inputs do not drift; weights per sentence-transformers.
      std::vector<double> acc(dim, 0.0);
      double total_weight = 0;
      for (int64_t t = 0; t < T; ++t) {
        const double w = pooling == Pooling::kWeightedMean ? static_cast<double>(t + 1) : 1.0;
        total_weight += w;
        const float* row = h + t * stride;
        for (int64_t c = 0; c < dim; ++c) acc[c] += w * row[c];
      }
      const double denom =
          pooling == Pooling::kMeanSqrtLen ? std::sqrt(static_cast<double>(T)) : total_weight;
      for (int64_t c = 0; c < dim; ++c) out[c] = static_cast<float>(acc[c] / denom);
      return;
    }
  }
}

void NormalizeL2(float* v, int64_t dim) {
  double ss = 0;
  for (int64_t c = 0; c < dim; ++c) ss += static_cast<double>(v[c]) * v[c];
  if (ss == 0) return;
  const double inv = 1.0 / std::sqrt(ss);
  for (int64_t c = 0; c < dim; ++c) v[c] = static_cast<float>(v[c] * inv);
}

}  // namespace rwkv_embed
