#include "kernels/activations.h"

#include <immintrin.h>

#include <cmath>

#include "kernels/gemm_internal.h"
#include "kernels/gemm_simd.h"

// glibc libmvec, AVX-512 variants (vector function ABI names, glibc >= 2.22 / 2.35).
// NOLINTBEGIN(bugprone-reserved-identifier,readability-identifier-naming)
extern "C" {
__m512 _ZGVeN16v_expf(__m512 x);
__m512 _ZGVeN16v_tanhf(__m512 x);
}
// NOLINTEND(bugprone-reserved-identifier,readability-identifier-naming)

namespace rwkv_embed::kernels {
namespace {

using VectorFn = __m512 (*)(__m512);

RWKV_TARGET_AVX512 void ApplyAvx512(VectorFn f, float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, f(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, mask, f(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

bool HasAvx512() {
  static const bool has = internal::DetectCpuFeatures().avx512;
  return has;
}

}  // namespace

void ExpInPlace(float* x, int64_t n) {
  if (HasAvx512()) {
    ApplyAvx512(&_ZGVeN16v_expf, x, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

void TanhInPlace(float* x, int64_t n) {
  if (HasAvx512()) {
    ApplyAvx512(&_ZGVeN16v_tanhf, x, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
}

}  // namespace rwkv_embed::kernels
