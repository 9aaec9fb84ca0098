// Dense matrix products against stored weight matrices. Knows nothing about RWKV.
#pragma once

#include <cstdint>
#include <iterator>
#include <string_view>

#include "core/dtype.h"

namespace rwkv_embed::kernels {

// A weight matrix W[n, k] (n outputs x k inputs, row-major) as stored in a checkpoint, in its
// stored dtype (F32 or BF16; F16 checkpoints are converted at load time). `data` may have any
// alignment (a tensor mapped from a file with an odd header length starts at an odd address):
// every path reads it with memcpy or unaligned vector loads, never through a typed pointer.
struct WeightMatrix {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;  // n
  int64_t cols = 0;  // k
};

// How the product is computed.
//  kF32:  weights widened to FP32, FP32 multiply-accumulate. Matches an FP32 reference.
//  kBF16: activations rounded to BF16, BF16 x BF16 products accumulated in FP32 (AVX512-BF16 /
//         AMX where present). Faster; error vs kF32 is bounded by BF16 rounding of x (~2^-9 rel).
//         kBF16 is a permission, not a promise: with F32 weights, or where an FP32 path measured
//         faster on this machine, MatMulT computes exactly as kF32.
enum class MatMulPrecision { kF32, kBF16 };

// "f32" | "bf16" -> the precision. Throws UsageError naming the value and the valid names.
MatMulPrecision ParseMatMulPrecision(std::string_view name);
std::string_view MatMulPrecisionName(MatMulPrecision precision);

// y[m, n] = x[m, k] . W[n, k]^T   (torch.nn.functional.linear without bias).
// x and y are row-major with leading dimensions k and n; y is overwritten. Multi-threaded
// (OpenMP). Works straight from the stored (e.g. mmap'd) weights: no copy of W is made, only x is
// repacked into a per-call scratch buffer. Throws UsageError when a forced path cannot take w.
void MatMulT(const float* x, int64_t m, const WeightMatrix& w, float* y,
             MatMulPrecision precision = MatMulPrecision::kF32);

// ---- Implementation paths ------------------------------------------------------------------
// MatMulT runs the path measured fastest on this machine for the weight shape, dtype, precision
// and m range (kernels/gemm_autotune.h), unless a path is forced (ForceGemmPath).
//  kPortable:   plain C++ (auto-vectorized for the build's baseline ISA) for any CPU; kBF16 rounds
//               x to BF16 first.
//  kAvx2F32:    AVX2 + FMA. 6 x 16 outer-product panels over a per-thread widened 16-row slice of
//               W (16 KiB scratch); BF16 weights widened to FP32 in registers. FP32 arithmetic.
//  kAvx512F32:  AVX-512F FMA, 12 x 32 panels over a 32-row slice of W (32 KiB scratch). FP32.
//  kAvx512Bf16: AVX512-BF16 `vdpbf16ps` dot-product tiles straight from W. BF16 weights only;
//               also finishes the rows AMX tiles leave.
//  kAmxBf16:    AMX `tdpbf16ps` tiles with W as the A operand (no weight repacking). BF16 weights
//               only.
//  kOneDnnBf16: oneDNN matmul (Debian libdnnl) on the stored [n, k] BF16 weights as they lie (a
//               K x N weights descriptor with strides {1, K}: no copy); x rounded to BF16.
//  kOneDnnF32:  oneDNN FP32 matmul on stored F32 weights (no copy). F32 weights only.
// The FP32 paths compute every output row by the same operations whatever m and the thread count
// are (bit-identical rows however a batch is packed); so do the BF16 ones, and oneDNN's brgemm
// kernels as measured by tests/gemm_test.cc.
enum class GemmPath {
  kAuto,
  kPortable,
  kAvx2F32,
  kAvx512F32,
  kAvx512Bf16,
  kAmxBf16,
  kOneDnnBf16,
  kOneDnnF32,
};

// Every path except kAuto, in this order.
inline constexpr GemmPath kAllGemmPaths[] = {
    GemmPath::kPortable, GemmPath::kAvx2F32,    GemmPath::kAvx512F32, GemmPath::kAvx512Bf16,
    GemmPath::kAmxBf16,  GemmPath::kOneDnnBf16, GemmPath::kOneDnnF32};

std::string_view GemmPathName(GemmPath path);

// "auto", "portable", "avx2-f32", ... -> the path. Throws UsageError listing the names.
GemmPath ParseGemmPath(std::string_view name);

// Whether this CPU, OS and build can run `path` (AMX also needs the kernel's XTILEDATA permission,
// which this requests once; the oneDNN paths need libdnnl and a non-reference implementation).
bool GemmPathAvailable(GemmPath path);

// Whether `path` multiplies in BF16 (rounds x to BF16) rather than FP32.
bool GemmPathRoundsToBf16(GemmPath path);

// Whether `path` can take weights of `dtype` at `precision` (BF16-math paths need BF16 weights
// and kBF16; FP32-math paths take both dtypes at either precision, except kOneDnnF32: F32 only).
bool GemmPathAccepts(GemmPath path, DType dtype, MatMulPrecision precision);

// Forces MatMulT onto `path` for the whole process (kAuto: back to the measured choice). Also caps
// the WKV/activation/norm kernels at the path's ISA level (kernels/dispatch.h). Throws UsageError
// when the path is unavailable here. Without a call, RWKV_EMBED_GEMM_PATH (a name, or "auto") is
// read once at first use.
void ForceGemmPath(GemmPath path);
GemmPath ForcedGemmPath();  // kAuto when none is forced

// The path MatMulT uses for this problem (never kAuto): the forced path, else the measured choice
// (measured now if this shape and m range are new, within the autotuning budget).
GemmPath SelectGemmPath(int64_t m, const WeightMatrix& w, MatMulPrecision precision);

// MatMulT forced onto `path` (kAuto = MatMulT). Throws UsageError when the path is unavailable on
// this machine or cannot take this weight dtype and precision (GemmPathAccepts).
void MatMulTWithPath(GemmPath path, const float* x, int64_t m, const WeightMatrix& w, float* y,
                     MatMulPrecision precision = MatMulPrecision::kF32);

// Floating-point operations (2 m n k) done by each path since the last reset, indexed like
// kAllGemmPaths: which paths a workload actually ran (bench's backend column).
struct GemmFlopCounts {
  double flops[std::size(kAllGemmPaths)] = {};
};
GemmFlopCounts GemmFlopCounters();
void ResetGemmFlopCounters();

}  // namespace rwkv_embed::kernels
