#include "kernels/gemm.h"

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/gemm_internal.h"

namespace rwkv_embed::kernels {
namespace internal {

// Reference-style path: widen one weight row at a time, dot it with every activation row. The
// inner loop auto-vectorizes for the build's baseline ISA.
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

namespace {

size_t PathIndex(GemmPath path) {
  for (size_t i = 0; i < std::size(kAllGemmPaths); ++i) {
    if (kAllGemmPaths[i] == path) return i;
  }
  return 0;
}

std::atomic<double> g_flops[std::size(kAllGemmPaths)];

std::string PathNames() {
  std::string s = "auto";
  for (GemmPath p : kAllGemmPaths) s += ", " + std::string(GemmPathName(p));
  return s;
}

// BF16 math only pays from k = 64 on: below, a product is one or two BF16 tiles per output, and
// packing x costs as much as the FP32 FMAs it saves (measured for AMX, bench/gemm_bench.cc), while
// rounding x to BF16 still costs accuracy (LoRA factors of rank 32 feed exp/tanh). So the BF16
// paths hand such products to the best FP32 path of their ISA.
constexpr int64_t kMinBf16K = 64;

GemmPath Fp32Sibling(GemmPath path) {
  const CpuFeatures& f = DetectCpuFeatures();
  if (path == GemmPath::kPortable) return GemmPath::kPortable;
  return f.avx512 ? GemmPath::kAvx512F32 : f.avx2 ? GemmPath::kAvx2F32 : GemmPath::kPortable;
}

void Run(GemmPath path, const float* x, int64_t m, const WeightMatrix& w, float* y,
         MatMulPrecision precision) {
  const bool rounds = GemmPathRoundsToBf16(path) ||
                      (path == GemmPath::kPortable && precision == MatMulPrecision::kBF16 &&
                       w.dtype == DType::kBF16);
  if (rounds && w.cols < kMinBf16K) {
    path = Fp32Sibling(path);
    precision = MatMulPrecision::kF32;
  }
  switch (path) {
    case GemmPath::kAuto:
    case GemmPath::kPortable:
      internal::GemmPortable(x, m, w, y, w.rows,
                             precision == MatMulPrecision::kBF16 && w.dtype == DType::kBF16);
      return;
    case GemmPath::kAvx2F32:
      internal::GemmAvx2F32(x, m, w, y, w.rows);
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
    case GemmPath::kOneDnnBf16:
      internal::GemmOneDnn(x, m, w, y, /*bf16=*/true);
      return;
    case GemmPath::kOneDnnF32:
      internal::GemmOneDnn(x, m, w, y, /*bf16=*/false);
      return;
  }
}

}  // namespace

std::string_view GemmPathName(GemmPath path) {
  switch (path) {
    case GemmPath::kAuto:
      return "auto";
    case GemmPath::kPortable:
      return "portable";
    case GemmPath::kAvx2F32:
      return "avx2-f32";
    case GemmPath::kAvx512F32:
      return "avx512-f32";
    case GemmPath::kAvx512Bf16:
      return "avx512-bf16";
    case GemmPath::kAmxBf16:
      return "amx-bf16";
    case GemmPath::kOneDnnBf16:
      return "onednn-bf16";
    case GemmPath::kOneDnnF32:
      return "onednn-f32";
  }
  return "?";
}

MatMulPrecision ParseMatMulPrecision(std::string_view name) {
  if (name == "f32") return MatMulPrecision::kF32;
  if (name == "bf16") return MatMulPrecision::kBF16;
  throw UsageError("unknown precision '" + std::string(name) + "' (valid: f32|bf16)");
}

std::string_view MatMulPrecisionName(MatMulPrecision precision) {
  return precision == MatMulPrecision::kBF16 ? "bf16" : "f32";
}

GemmPath ParseGemmPath(std::string_view name) {
  if (name == "auto") return GemmPath::kAuto;
  for (GemmPath p : kAllGemmPaths) {
    if (GemmPathName(p) == name) return p;
  }
  throw UsageError("unknown GEMM path '" + std::string(name) + "' (one of: " + PathNames() + ")");
}

bool GemmPathAvailable(GemmPath path) {
  const CpuFeatures& f = DetectCpuFeatures();
  switch (path) {
    case GemmPath::kAuto:
    case GemmPath::kPortable:
      return true;
    case GemmPath::kAvx2F32:
      return f.avx2;
    case GemmPath::kAvx512F32:
      return f.avx512;
    case GemmPath::kAvx512Bf16:
      return f.avx512_bf16;
    case GemmPath::kAmxBf16:
      return f.amx_bf16;
    case GemmPath::kOneDnnBf16:
      return internal::OneDnnAvailable(true);
    case GemmPath::kOneDnnF32:
      return internal::OneDnnAvailable(false);
  }
  return false;
}

bool GemmPathRoundsToBf16(GemmPath path) {
  return path == GemmPath::kAvx512Bf16 || path == GemmPath::kAmxBf16 ||
         path == GemmPath::kOneDnnBf16;
}

bool GemmPathAccepts(GemmPath path, DType dtype, MatMulPrecision precision) {
  if (dtype != DType::kF32 && dtype != DType::kBF16) return false;
  if (GemmPathRoundsToBf16(path)) {
    return dtype == DType::kBF16 && precision == MatMulPrecision::kBF16;
  }
  if (path == GemmPath::kOneDnnF32) return dtype == DType::kF32;
  return true;
}

GemmPath SelectGemmPath(int64_t m, const WeightMatrix& w, MatMulPrecision precision) {
  const GemmPath forced = ForcedGemmPath();
  if (forced != GemmPath::kAuto) return forced;
  return internal::AutotunedPath(m, w, precision);
}

void MatMulTWithPath(GemmPath path, const float* x, int64_t m, const WeightMatrix& w, float* y,
                     MatMulPrecision precision) {
  if (w.dtype != DType::kF32 && w.dtype != DType::kBF16) {
    throw UsageError("MatMulT: weight dtype " + std::string(DTypeName(w.dtype)) +
                     " unsupported (F32 or BF16 only)");
  }
  if (path == GemmPath::kAuto) path = SelectGemmPath(m, w, precision);
  if (!GemmPathAvailable(path)) {
    throw UsageError("GEMM path " + std::string(GemmPathName(path)) +
                     " is not available on this CPU");
  }
  if (!GemmPathAccepts(path, w.dtype, precision)) {
    throw UsageError("GEMM path " + std::string(GemmPathName(path)) + " cannot multiply " +
                     std::string(DTypeName(w.dtype)) + " weights at " +
                     (precision == MatMulPrecision::kBF16 ? "bf16" : "f32") + " precision" +
                     (GemmPathRoundsToBf16(path) ? " (it needs BF16 weights and --precision bf16)"
                                                 : " (it needs F32 weights)"));
  }
  assert(w.data != nullptr && m >= 0 && w.rows >= 0 && w.cols >= 0);
  if (m == 0 || w.rows == 0) return;
  if (w.cols == 0) {  // empty sum
    for (int64_t i = 0; i < m * w.rows; ++i) y[i] = 0.0f;
    return;
  }
  Run(path, x, m, w, y, precision);
  g_flops[PathIndex(path)].fetch_add(
      2.0 * static_cast<double>(m) * static_cast<double>(w.rows) * static_cast<double>(w.cols),
      std::memory_order_relaxed);
}

void MatMulT(const float* x, int64_t m, const WeightMatrix& w, float* y,
             MatMulPrecision precision) {
  MatMulTWithPath(GemmPath::kAuto, x, m, w, y, precision);
}

GemmFlopCounts GemmFlopCounters() {
  GemmFlopCounts c;
  for (size_t i = 0; i < std::size(kAllGemmPaths); ++i) {
    c.flops[i] = g_flops[i].load(std::memory_order_relaxed);
  }
  return c;
}

void ResetGemmFlopCounters() {
  for (auto& f : g_flops) f.store(0, std::memory_order_relaxed);
}

}  // namespace rwkv_embed::kernels
