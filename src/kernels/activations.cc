#include "kernels/activations.h"

#include <immintrin.h>

#include <cmath>

#include "kernels/gemm_simd.h"
#include "kernels/kernel_table.h"

// glibc libmvec vector variants (vector function ABI names; expf since glibc 2.22, tanhf since
// 2.35). They may only be called on CPUs with the ISA of their register width: the AVX-512 ones
// from the AVX-512 table, the AVX2 ones from the AVX2 table.
// NOLINTBEGIN(bugprone-reserved-identifier,readability-identifier-naming)
extern "C" {
__m512 _ZGVeN16v_expf(__m512 x);
__m512 _ZGVeN16v_tanhf(__m512 x);
__m256 _ZGVdN8v_expf(__m256 x);
__m256 _ZGVdN8v_tanhf(__m256 x);
}
// NOLINTEND(bugprone-reserved-identifier,readability-identifier-naming)

namespace rwkv_embed::kernels {
namespace {

using Vector16Fn = __m512 (*)(__m512);
using Vector8Fn = __m256 (*)(__m256);

RWKV_TARGET_AVX512 void Apply16(Vector16Fn f, float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, f(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, mask, f(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

RWKV_TARGET_AVX2 void Apply8(Vector8Fn f, float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    // Lanes below n - i on (sign bit set); masked-off lanes load as 0.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), lane);
    _mm256_maskstore_ps(x + i, mask, f(_mm256_maskload_ps(x + i, mask)));
  }
}

}  // namespace

namespace internal {

void ExpPortable(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}
void TanhPortable(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
}
void ExpAvx2(float* x, int64_t n) { Apply8(&_ZGVdN8v_expf, x, n); }
void TanhAvx2(float* x, int64_t n) { Apply8(&_ZGVdN8v_tanhf, x, n); }
void ExpAvx512(float* x, int64_t n) { Apply16(&_ZGVeN16v_expf, x, n); }
void TanhAvx512(float* x, int64_t n) { Apply16(&_ZGVeN16v_tanhf, x, n); }

}  // namespace internal

void ExpInPlace(float* x, int64_t n) { internal::ActiveKernels().exp(x, n); }
void TanhInPlace(float* x, int64_t n) { internal::ActiveKernels().tanh(x, n); }

}  // namespace rwkv_embed::kernels
