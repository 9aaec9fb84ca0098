// Internal: the function-pointer table of the non-GEMM kernel families, one implementation per
// ISA level (defined in activations.cc, linear_attention.cc, norm.cc; chosen in dispatch.cc).
// ISA-specific code lives in functions with target attributes inside the family's .cc file, never
// in inline functions of a header, so no AVX2/AVX-512 instructions leak into code that runs on
// every CPU.
#pragma once

#include <cstdint>

#include "kernels/dispatch.h"

namespace rwkv_embed::kernels::internal {

using ElementwiseFn = void (*)(float* x, int64_t n);
// One head of the linear-attention scan (see LinearAttentionHead); off = h * S.
using WkvHeadFn = void (*)(const float* r, const float* k, const float* v, const float* d,
                           const float* u, int64_t T, int64_t off, int64_t S, int64_t stride,
                           float* state_h, float* y);
// out[0, n) = (x - mean) / sqrt(var + eps) * weight + bias over one slice.
using NormSliceFn = void (*)(const float* x, int64_t n, const float* weight, const float* bias,
                             double eps, float* out);

struct KernelTable {
  KernelIsa isa;
  ElementwiseFn exp, tanh;
  WkvHeadFn wkv_head;
  NormSliceFn norm_slice;
};

// The table of ActiveKernelIsa(); chosen once, re-chosen only when a GEMM path is forced.
const KernelTable& ActiveKernels();

// The table of one level (tests run every level the CPU has through the same checks).
const KernelTable& KernelTableFor(KernelIsa isa);

// Per-ISA implementations. The kAvx2/kAvx512 ones may only be called when the CPU has that level.
void ExpPortable(float* x, int64_t n);
void ExpAvx2(float* x, int64_t n);
void ExpAvx512(float* x, int64_t n);
void TanhPortable(float* x, int64_t n);
void TanhAvx2(float* x, int64_t n);
void TanhAvx512(float* x, int64_t n);
void WkvHeadPortable(const float* r, const float* k, const float* v, const float* d, const float* u,
                     int64_t T, int64_t off, int64_t S, int64_t stride, float* state_h, float* y);
void WkvHeadAvx2(const float* r, const float* k, const float* v, const float* d, const float* u,
                 int64_t T, int64_t off, int64_t S, int64_t stride, float* state_h, float* y);
void WkvHeadAvx512(const float* r, const float* k, const float* v, const float* d, const float* u,
                   int64_t T, int64_t off, int64_t S, int64_t stride, float* state_h, float* y);
void NormSlicePortable(const float* x, int64_t n, const float* weight, const float* bias,
                       double eps, float* out);
void NormSliceAvx2(const float* x, int64_t n, const float* weight, const float* bias, double eps,
                   float* out);
void NormSliceAvx512(const float* x, int64_t n, const float* weight, const float* bias, double eps,
                     float* out);

}  // namespace rwkv_embed::kernels::internal
