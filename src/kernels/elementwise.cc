#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/activations.h"

namespace rwkv_embed::kernels {
namespace {

// Large enough that thread start-up is amortised.
constexpr int64_t kParallelElems = 1 << 15;
// Stack scratch for row-wise transcendental functions.
constexpr int64_t kRowChunk = 256;

// Calls f(row_index) for every row, rows split across threads when rows * cols is large.
template <typename F>
void ForRows(int64_t rows, int64_t cols, F f) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelElems)
  for (int64_t t = 0; t < rows; ++t) f(t);
}

template <typename F>
void ForElems(int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n > kParallelElems)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// sigmoid(v) = 1 / (1 + exp(-v)) over `len` values, via the vectorised exp.
inline void SigmoidSpan(float* x, const float* bias, int64_t len) {
  float e[kRowChunk];
  for (int64_t c0 = 0; c0 < len; c0 += kRowChunk) {
    const int64_t n = std::min(kRowChunk, len - c0);
    for (int64_t c = 0; c < n; ++c) {
      x[c0 + c] += bias ? bias[c0 + c] : 0.0f;
      e[c] = -x[c0 + c];
    }
    ExpInPlace(e, n);
    for (int64_t c = 0; c < n; ++c) x[c0 + c] = 1.0f / (1.0f + e[c]);
  }
}

}  // namespace

void GatherRows(const WeightMatrix& table, std::span<const int32_t> ids, float* out) {
  const int64_t C = table.cols, n = static_cast<int64_t>(ids.size());
  const auto* base = static_cast<const std::byte*>(table.data);
  ForRows(n, C, [=](int64_t t) {
    float* row = out + t * C;
    if (table.dtype == DType::kBF16) {
      const std::byte* src = base + static_cast<int64_t>(ids[t]) * C * 2;
      for (int64_t c = 0; c < C; ++c) {
        uint16_t h;
        std::memcpy(&h, src + c * 2, 2);
        row[c] = Bf16ToF32(h);
      }
    } else {
      std::memcpy(row, base + static_cast<int64_t>(ids[t]) * C * 4, C * sizeof(float));
    }
  });
}

void TokenShiftDelta(const float* a, int64_t cols, std::span<const int64_t> offsets,
                     const float* const* first_prev, float* xx) {
  const auto n_seq = static_cast<int64_t>(offsets.size()) - 1;
  const int64_t rows = n_seq > 0 ? offsets[n_seq] : 0;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelElems)
  for (int64_t s = 0; s < n_seq; ++s) {
    for (int64_t t = offsets[s]; t < offsets[s + 1]; ++t) {
      const float* prev = t == offsets[s] ? first_prev[s] : a + (t - 1) * cols;
      const float* cur = a + t * cols;
      float* out = xx + t * cols;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) out[c] = prev[c] - cur[c];
    }
  }
}

void MixRows(const float* a, const float* xx, const float* mu, int64_t rows, int64_t cols,
             float* out) {
  ForRows(rows, cols, [=](int64_t t) {
    const float* at = a + t * cols;
    const float* xt = xx + t * cols;
    float* o = out + t * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) o[c] = at[c] + xt[c] * mu[c];
  });
}

void AddInPlace(float* x, const float* d, int64_t n) {
  ForElems(n, [=](int64_t i) { x[i] += d[i]; });
}

void MulInPlace(float* x, const float* m, int64_t n) {
  ForElems(n, [=](int64_t i) { x[i] *= m[i]; });
}

void ScaleInPlace(float* x, float s, int64_t n) {
  ForElems(n, [=](int64_t i) { x[i] *= s; });
}

void MulRowsByVector(const float* x, const float* v, int64_t rows, int64_t cols, float* out) {
  ForRows(rows, cols, [=](int64_t t) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[t * cols + c] = x[t * cols + c] * v[c];
  });
}

void TanhRows(float* x, int64_t rows, int64_t cols) {
  ForRows(rows, cols, [=](int64_t t) { TanhInPlace(x + t * cols, cols); });
}

void SigmoidRows(float* x, int64_t rows, int64_t cols, const float* bias) {
  ForRows(rows, cols, [=](int64_t t) { SigmoidSpan(x + t * cols, bias, cols); });
}

void ReluSquareInPlace(float* x, int64_t n) {
  ForElems(n, [=](int64_t i) {
    const float r = x[i] > 0.0f ? x[i] : 0.0f;
    x[i] = r * r;
  });
}

void ExpNegScaledSigmoidRows(float* x, int64_t rows, int64_t cols, const float* bias, float scale) {
  ForRows(rows, cols, [=](int64_t t) {
    float* row = x + t * cols;
    SigmoidSpan(row, bias, cols);
    for (int64_t c = 0; c < cols; ++c) row[c] *= -scale;
    ExpInPlace(row, cols);
  });
}

void LerpInPlace(float* x, const float* target, const float* t, int64_t n) {
  ForElems(n, [=](int64_t i) { x[i] += (target[i] - x[i]) * t[i]; });
}

void MulByBlendWithOne(float* x, const float* t, const float* mix, int64_t rows, int64_t cols) {
  ForRows(rows, cols, [=](int64_t r) {
    float* xr = x + r * cols;
    const float* tr = t + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) xr[c] *= 1.0f + (tr[c] - 1.0f) * mix[c];
  });
}

void L2NormalizeGroups(float* x, int64_t rows, int64_t groups, int64_t group_size, double eps) {
  const int64_t cols = groups * group_size;
  ForRows(rows, cols, [=](int64_t r) {
    for (int64_t g = 0; g < groups; ++g) {
      float* p = x + r * cols + g * group_size;
      double ss = 0;
      for (int64_t j = 0; j < group_size; ++j) ss += static_cast<double>(p[j]) * p[j];
      const auto inv = static_cast<float>(1.0 / std::max(std::sqrt(ss), eps));
      for (int64_t j = 0; j < group_size; ++j) p[j] *= inv;
    }
  });
}

void AddGroupTripleDotTimes(float* y, const float* a, const float* b, const float* u,
                            const float* v, int64_t rows, int64_t groups, int64_t group_size) {
  const int64_t cols = groups * group_size;
  ForRows(rows, cols, [=](int64_t r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t o = r * cols + g * group_size;
      double dot = 0;
      for (int64_t j = 0; j < group_size; ++j) {
        dot += static_cast<double>(a[o + j]) * b[o + j] * u[g * group_size + j];
      }
      const auto s = static_cast<float>(dot);
      for (int64_t j = 0; j < group_size; ++j) y[o + j] += s * v[o + j];
    }
  });
}

}  // namespace rwkv_embed::kernels
