#include "kernels/linear_attention.h"

namespace rwkv_embed::kernels {

void LinearAttentionHead(const float* r, const float* k, const float* v, const float* d,
                         const float* u, int64_t T, int64_t h, int64_t S, int64_t stride,
                         float* state_h, float* y) {
  const int64_t off = h * S;
  for (int64_t t = 0; t < T; ++t) {
    const float* rt = r + t * stride + off;
    const float* kt = k + t * stride + off;
    const float* vt = v + t * stride + off;
    const float* dt = d + t * stride + off;
    float* yt = y + t * stride + off;
    for (int64_t j = 0; j < S; ++j) yt[j] = 0.0f;
    for (int64_t i = 0; i < S; ++i) {
      const float ri = rt[i], ki = kt[i], di = dt[i], rui = ri * u[off + i] * ki;
      float* m = state_h + i * S;
      // Vectorised over the value channel j (S = 64: four AVX-512 registers).
#pragma omp simd
      for (int64_t j = 0; j < S; ++j) {
        yt[j] += rui * vt[j] + ri * m[j];
        m[j] = ki * vt[j] + di * m[j];
      }
    }
  }
}

void LinearAttention(const float* r, const float* k, const float* v, const float* d, const float* u,
                     int64_t T, int64_t heads, int64_t S, int64_t stride, float* state, float* y) {
  for (int64_t h = 0; h < heads; ++h) {
    LinearAttentionHead(r, k, v, d, u, T, h, S, stride, state + h * S * S, y);
  }
}

}  // namespace rwkv_embed::kernels
