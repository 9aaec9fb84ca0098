// oneDNN (Debian's libdnnl) as seen from outside the GEMM paths: its version for the autotuning
// cache key, and its own matmul timed on its own terms, the outside peak `bench` reports
// efficiency against.
#pragma once

#include <cstdint>
#include <string>

namespace rwkv_embed::kernels {

// "2.6.3" (the runtime library's version), or "" when built without oneDNN.
std::string OneDnnVersion();

struct OneDnnTiming {
  bool ran = false;     // false: no oneDNN in this build, or it has no implementation here
  std::string impl;     // oneDNN's implementation name, e.g. "brg:avx512_core_bf16"
  double best_s = 0;    // best wall time of one y[m, n] = x[m, k] W[n, k]^T
  double gflops = 0;    // 2 m n k / best_s
  std::string message;  // why it did not run
};

// Times oneDNN's matmul (BF16 x BF16 -> F32, or F32) on random data with W as stored ([n, k]
// row-major: the weights descriptor is K x N with strides {1, K}), x already in the compute
// dtype: one warm-up then `repetitions` timed runs, on the current OpenMP thread count.
OneDnnTiming TimeOneDnnMatmul(int64_t m, int64_t n, int64_t k, bool bf16, int repetitions);

}  // namespace rwkv_embed::kernels
