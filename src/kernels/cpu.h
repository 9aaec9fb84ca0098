// The one place where CPU features are detected. Every kernel family (GEMM, WKV, activations,
// norms) is dispatched from these flags (kernels/dispatch.h); nothing else runs cpuid.
#pragma once

#include <string>

namespace rwkv_embed::kernels {

struct CpuFeatures {
  bool avx2 = false;         // AVX2 + FMA, with OS support for YMM state (x86-64-v3 level)
  bool avx512 = false;       // AVX-512 F/BW/VL/DQ + FMA, with OS support for ZMM state
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16)
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16 with XTILEDATA permission granted
};

// Detected once (cpuid/xgetbv, and arch_prctl for AMX's permission), then cached.
const CpuFeatures& DetectCpuFeatures();

// "avx2 avx512 avx512-bf16 amx-bf16" (the detected ones, space-separated; "none" if none).
std::string DescribeCpuFeatures(const CpuFeatures& f);

// The processor brand string from cpuid (leaves 0x80000002-4), trimmed, e.g. "AMD EPYC 9654
// 96-Core Processor"; with family/model/stepping appended, so that the autotuning cache of one
// CPU model is never used on another that reports the same brand text.
std::string CpuIdentity();

}  // namespace rwkv_embed::kernels
