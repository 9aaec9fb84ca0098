// One dispatch style for every kernel family. CPU features are detected once (kernels/cpu.h); from
// them each process picks one table of function pointers for the WKV scan, activations and norms
// (the ISA level below), and the GEMM picks a path per weight shape (kernels/gemm.h: measured at
// run time unless forced). Forcing a GEMM path (--gemm-path, RWKV_EMBED_GEMM_PATH) also caps the
// other families at that path's ISA level, so `--gemm-path avx2-f32` runs the whole forward pass
// as a CPU without AVX-512 would.
#pragma once

#include <string_view>

namespace rwkv_embed::kernels {

// Instruction-set levels of the non-GEMM kernel families.
enum class KernelIsa { kPortable, kAvx2, kAvx512 };

std::string_view KernelIsaName(KernelIsa isa);  // "portable" | "avx2" | "avx512"

// The best level this CPU runs.
KernelIsa BestKernelIsa();

// The level the WKV scan, activations and norms use now: BestKernelIsa(), capped by the level of
// a forced GEMM path.
KernelIsa ActiveKernelIsa();

}  // namespace rwkv_embed::kernels
