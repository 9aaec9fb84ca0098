// SIMD helpers shared by the kernels. Every function carries its own target attribute, so these
// compile (and are only ever called after runtime dispatch) on the portable baseline build. ISA
// code is never in an inline function without a target attribute, and the kernels are compiled
// with the baseline flags (no per-file -mavx512f), so no generic inline function (std::min,
// std::vector, ...) is ever instantiated with AVX2/AVX-512 instructions that the linker could pick
// for code running on every CPU.
#pragma once

#include <immintrin.h>

#include <cstdint>

// F/BW/VL/DQ + BF16: Cooper Lake, Sapphire Rapids, Zen 4 and later. Only the BF16 kernels use the
// BF16 instructions; the others are dispatched on DetectCpuFeatures().avx512 alone.
#define RWKV_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define RWKV_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define RWKV_TARGET_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")))
#define RWKV_TARGET_AMX \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16,amx-tile,amx-bf16")))

// GCC 12 reports the deliberately undefined pass-through operand inside its own AVX-512 shuffle
// intrinsics (_mm512_undefined_ps) as "(maybe) uninitialized" once they are inlined (GCC PR
// 105593). The warning fires where the intrinsic is finally inlined, so it stays off for the rest
// of each kernel file that includes this header (only kernels/gemm_*.cc do). Clang has no
// -Wmaybe-uninitialized (and would reject the pragma under -Werror).
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace rwkv_embed::kernels::internal {

// Horizontal sums of four vectors: {sum(a), sum(b), sum(c), sum(d)}.
RWKV_TARGET_AVX512 inline __m128 Reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  // hadd(a, b) = [a0+a1 a2+a3 b0+b1 b2+b3 | a4+a5 a6+a7 b4+b5 b6+b7]
  const __m256 ab = _mm256_hadd_ps(a8, b8);
  const __m256 cd = _mm256_hadd_ps(c8, d8);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // [a b c d (low halves) | a b c d (high halves)]
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// In-place transpose of a 16 x 16 block of 32-bit lanes held in 16 registers.
RWKV_TARGET_AVX512 inline void Transpose16x16(__m512 r[16]) {
  __m512 t[16];
  // 32-bit interleave of row pairs, then 64-bit, then 128-bit lanes twice.
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// dst[0, kpad) = BF16(src[0, k)) rounded to nearest even (NaN stays NaN; vcvtne2ps2bf16 treats
// FP32 subnormals as zero), zero-padded to kpad (a multiple of 32).
RWKV_TARGET_AVX512_BF16 inline void PackRowBf16(const float* src, int64_t k, int64_t kpad,
                                                uint16_t* dst) {
  for (int64_t c = 0; c < kpad; c += 32) {
    const int64_t left = k - c;
    const __mmask16 lo_mask = left >= 16 ? __mmask16(0xffff)
                              : left > 0 ? __mmask16((1u << left) - 1)
                                         : __mmask16(0);
    const __mmask16 hi_mask = left >= 32  ? __mmask16(0xffff)
                              : left > 16 ? __mmask16((1u << (left - 16)) - 1)
                                          : __mmask16(0);
    const __m512 lo = _mm512_maskz_loadu_ps(lo_mask, src + c);
    const __m512 hi = _mm512_maskz_loadu_ps(hi_mask, src + c + 16);
    // Elements of the second operand land in the low half.
    _mm512_storeu_si512(dst + c, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

}  // namespace rwkv_embed::kernels::internal
