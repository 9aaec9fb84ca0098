#include "kernels/delta_rule.h"

namespace rwkv_embed::kernels {

void DeltaRuleHeadPortable(const float* r, const float* w, const float* k, const float* v,
                           const float* a, const float* b, int64_t T, int64_t h, int64_t N,
                           int64_t stride, float* state_h, float* y) {
  const int64_t off = h * N;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t o = t * stride + off;
    const float *rt = r + o, *wt = w + o, *kt = k + o, *vt = v + o, *at = a + o, *bt = b + o;
    float* yt = y + o;
    for (int64_t i = 0; i < N; ++i) {
      float* row = state_h + i * N;
      float sa = 0.0f;
      for (int64_t j = 0; j < N; ++j) sa += row[j] * at[j];
      const float vi = vt[i];
      float yi = 0.0f;
      for (int64_t j = 0; j < N; ++j) {
        row[j] = row[j] * wt[j] + sa * bt[j] + vi * kt[j];
        yi += row[j] * rt[j];
      }
      yt[i] = yi;
    }
  }
}

void DeltaRuleHead(const float* r, const float* w, const float* k, const float* v, const float* a,
                   const float* b, int64_t T, int64_t h, int64_t N, int64_t stride, float* state_h,
                   float* y) {
  DeltaRuleHeadPortable(r, w, k, v, a, b, T, h, N, stride, state_h, y);
}

void DeltaRule(const float* r, const float* w, const float* k, const float* v, const float* a,
               const float* b, std::span<const int64_t> offsets, int64_t heads, int64_t N,
               float* const* states, float* y) {
  const auto n_seq = static_cast<int64_t>(offsets.size()) - 1;
  const int64_t stride = heads * N;
  const int64_t rows = n_seq > 0 ? offsets[n_seq] : 0;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (rows * stride > (1 << 15))
  for (int64_t s = 0; s < n_seq; ++s) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t o = offsets[s] * stride;
      DeltaRuleHead(r + o, w + o, k + o, v + o, a + o, b + o, offsets[s + 1] - offsets[s], h, N,
                    stride, states[s] + h * N * N, y + o);
    }
  }
}

}  // namespace rwkv_embed::kernels
