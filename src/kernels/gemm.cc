#include "kernels/gemm.h"

#include <cassert>
#include <vector>

namespace rwkv_embed::kernels {
namespace {

// Reference path: widen one weight row at a time, dot with every activation row.
template <typename LoadW>
void MatMulTReference(const float* x, int64_t m, const WeightMatrix& w, float* y, LoadW load) {
  const int64_t n = w.rows, k = w.cols;
#pragma omp parallel if (m * w.rows * w.cols > (1 << 20))
  {
    std::vector<float> wrow(k);
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t c = 0; c < k; ++c) wrow[c] = load(j * k + c);
      for (int64_t i = 0; i < m; ++i) {
        const float* xi = x + i * k;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < k; ++c) acc += xi[c] * wrow[c];
        y[i * n + j] = acc;
      }
    }
  }
}

}  // namespace

void MatMulT(const float* x, int64_t m, const WeightMatrix& w, float* y,
             MatMulPrecision /*precision*/) {
  assert(w.data != nullptr);
  if (w.dtype == DType::kF32) {
    const auto* wf = static_cast<const float*>(w.data);
    MatMulTReference(x, m, w, y, [wf](int64_t i) { return wf[i]; });
  } else {
    assert(w.dtype == DType::kBF16);
    const auto* wb = static_cast<const uint16_t*>(w.data);
    MatMulTReference(x, m, w, y, [wb](int64_t i) { return Bf16ToF32(wb[i]); });
  }
}

}  // namespace rwkv_embed::kernels
