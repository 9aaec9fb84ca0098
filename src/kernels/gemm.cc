#include "kernels/gemm.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cassert>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/gemm_internal.h"

namespace rwkv_embed::kernels {
namespace internal {
namespace {

// XCR0: which register states the OS saves (Intel SDM vol. 1, 13.3).
uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c & (1u << 27)) != 0;
  const bool fma = (c & (1u << 12)) != 0;
  if (!osxsave) return f;
  const uint64_t xcr0 = ReadXcr0();
  // SSE(1) + AVX(2) + opmask(5) + ZMM_Hi256(6) + Hi16_ZMM(7).
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx512f = (b & (1u << 16)) != 0, avx512dq = (b & (1u << 17)) != 0;
  const bool avx512bw = (b & (1u << 30)) != 0, avx512vl = (b & (1u << 31)) != 0;
  const bool amx_bf16 = (d & (1u << 22)) != 0, amx_tile = (d & (1u << 24)) != 0;
  f.avx512 = os_zmm && fma && avx512f && avx512dq && avx512bw && avx512vl;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = f.avx512 && (a1 & (1u << 5));
  // AMX tile data (XCR0 bits 17, 18) is off until the process asks Linux for it
  // (Documentation/arch/x86/xstate.rst): ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18.
  if (f.avx512_bf16 && amx_bf16 && amx_tile &&
      (xcr0 & (uint64_t{3} << 17)) == (uint64_t{3} << 17)) {
    f.amx_bf16 = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }
  return f;
}

}  // namespace

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

// Reference-style path: widen one weight row at a time, dot it with every activation row. The
// inner loop auto-vectorizes for whatever ISA the library is compiled for.
void GemmPortable(const float* x, int64_t m, const WeightMatrix& w, float* y, int64_t ldy,
                  bool round_x_to_bf16) {
  const int64_t n = w.rows, k = w.cols;
  std::vector<float> xr;
  if (round_x_to_bf16) {
    xr.resize(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m * k; ++i) xr[i] = Bf16ToF32(F32ToBf16(x[i]));
    x = xr.data();
  }
  // W may be mapped at any alignment (see WeightMatrix): rows are copied bytewise.
  const auto* wbytes = static_cast<const std::byte*>(w.data);
  const bool bf16 = w.dtype == DType::kBF16;
  const int64_t row_bytes = k * static_cast<int64_t>(DTypeSize(w.dtype));
#pragma omp parallel if (m * n * k >= kMinParallelMacs)
  {
    std::vector<float> wrow(static_cast<size_t>(k));
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      if (bf16) {
        Bf16ToF32Row(wbytes + j * row_bytes, k, wrow.data());
      } else {
        std::memcpy(wrow.data(), wbytes + j * row_bytes, static_cast<size_t>(row_bytes));
      }
      for (int64_t i = 0; i < m; ++i) {
        const float* xi = x + i * k;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < k; ++c) acc += xi[c] * wrow[c];
        y[i * ldy + j] = acc;
      }
    }
  }
}

}  // namespace internal

std::string_view GemmPathName(GemmPath path) {
  switch (path) {
    case GemmPath::kAuto:
      return "auto";
    case GemmPath::kPortable:
      return "portable";
    case GemmPath::kAvx512F32:
      return "avx512-f32";
    case GemmPath::kAvx512Bf16:
      return "avx512-bf16";
    case GemmPath::kAmxBf16:
      return "amx-bf16";
  }
  return "?";
}

bool GemmPathAvailable(GemmPath path) {
  const auto& f = internal::DetectCpuFeatures();
  switch (path) {
    case GemmPath::kAuto:
    case GemmPath::kPortable:
      return true;
    case GemmPath::kAvx512F32:
      return f.avx512;
    case GemmPath::kAvx512Bf16:
      return f.avx512_bf16;
    case GemmPath::kAmxBf16:
      return f.amx_bf16;
  }
  return false;
}

GemmPath SelectGemmPath(int64_t /*m*/, const WeightMatrix& w, MatMulPrecision precision) {
  const auto& f = internal::DetectCpuFeatures();
  // By measurement (bench/gemm_bench.cc, Sapphire Rapids): AMX is 3-5x faster than the FP32
  // panels on every Finch shape and m >= 16. The vdpbf16ps dot tiles are L2-bound and lose to the
  // FP32 panels (~75 vs ~135 GFLOP/s), so without AMX even kBF16 runs in FP32, which is also
  // more accurate. AMX needs whole 16 x 32 tiles of W (k % 32 == 0, n >= 16); at k = 32 (one
  // tdpbf16ps per output tile, LoRA maa_w2) packing x and transposing results cost as much as
  // the FP32 panels take, so AMX starts at k = 64.
  if (precision == MatMulPrecision::kBF16 && w.dtype == DType::kBF16 && f.amx_bf16 &&
      w.rows >= 16 && w.cols >= 64 && w.cols % 32 == 0) {
    return GemmPath::kAmxBf16;
  }
  return f.avx512 ? GemmPath::kAvx512F32 : GemmPath::kPortable;
}

void MatMulTWithPath(GemmPath path, const float* x, int64_t m, const WeightMatrix& w, float* y,
                     MatMulPrecision precision) {
  if (path == GemmPath::kAuto) path = SelectGemmPath(m, w, precision);
  if (!GemmPathAvailable(path)) {
    throw UsageError("GEMM path " + std::string(GemmPathName(path)) +
                     " is not available on this CPU");
  }
  if (w.dtype != DType::kF32 && w.dtype != DType::kBF16) {
    throw UsageError("MatMulT: weight dtype " + std::string(DTypeName(w.dtype)) +
                     " unsupported (F32 or BF16 only)");
  }
  if ((path == GemmPath::kAvx512Bf16 || path == GemmPath::kAmxBf16) && w.dtype != DType::kBF16) {
    throw UsageError("GEMM path " + std::string(GemmPathName(path)) + " needs BF16 weights");
  }
  assert(w.data != nullptr && m >= 0 && w.rows >= 0 && w.cols >= 0);
  if (m == 0 || w.rows == 0) return;
  if (w.cols == 0) {  // empty sum
    for (int64_t i = 0; i < m * w.rows; ++i) y[i] = 0.0f;
    return;
  }
  switch (path) {
    case GemmPath::kAuto:
    case GemmPath::kPortable:
      internal::GemmPortable(x, m, w, y, w.rows,
                             precision == MatMulPrecision::kBF16 && w.dtype == DType::kBF16);
      return;
    case GemmPath::kAvx512F32:
      internal::GemmAvx512F32(x, m, w, y, w.rows);
      return;
    case GemmPath::kAvx512Bf16:
      internal::GemmAvx512Bf16(x, m, w, y, w.rows);
      return;
    case GemmPath::kAmxBf16:
      internal::GemmAmxBf16(x, m, w, y, w.rows);
      return;
  }
}

void MatMulT(const float* x, int64_t m, const WeightMatrix& w, float* y,
             MatMulPrecision precision) {
  MatMulTWithPath(SelectGemmPath(m, w, precision), x, m, w, y, precision);
}

}  // namespace rwkv_embed::kernels
