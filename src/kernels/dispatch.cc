// The one place where kernel implementations are chosen: the ISA level of the WKV scan,
// activations and norms, and a forced GEMM path (whose level caps the others).
#include "kernels/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "core/error.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"

namespace rwkv_embed::kernels {
namespace {

constexpr internal::KernelTable kPortableTable = {
    KernelIsa::kPortable, &internal::ExpPortable, &internal::TanhPortable,
    &internal::WkvHeadPortable, &internal::NormSlicePortable};
constexpr internal::KernelTable kAvx2Table = {KernelIsa::kAvx2, &internal::ExpAvx2,
                                              &internal::TanhAvx2, &internal::WkvHeadAvx2,
                                              &internal::NormSliceAvx2};
constexpr internal::KernelTable kAvx512Table = {KernelIsa::kAvx512, &internal::ExpAvx512,
                                                &internal::TanhAvx512, &internal::WkvHeadAvx512,
                                                &internal::NormSliceAvx512};

}  // namespace

namespace internal {
const KernelTable& KernelTableFor(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
      return kAvx512Table;
    case KernelIsa::kAvx2:
      return kAvx2Table;
    case KernelIsa::kPortable:
      break;
  }
  return kPortableTable;
}
}  // namespace internal

namespace {

// The ISA level a forced GEMM path implies for the other families.
KernelIsa PathIsa(GemmPath path) {
  switch (path) {
    case GemmPath::kPortable:
      return KernelIsa::kPortable;
    case GemmPath::kAvx2F32:
      return KernelIsa::kAvx2;
    default:
      return KernelIsa::kAvx512;
  }
}

std::mutex g_mutex;
bool g_forced_set = false;  // guarded by g_mutex
std::atomic<GemmPath> g_forced{GemmPath::kAuto};
std::atomic<const internal::KernelTable*> g_table{nullptr};

void CheckAvailable(GemmPath path, const std::string& source) {
  if (!GemmPathAvailable(path)) {
    throw UsageError(source + ": GEMM path " + std::string(GemmPathName(path)) +
                     " is not available on this CPU/build (CPU features: " +
                     DescribeCpuFeatures(DetectCpuFeatures()) + ")");
  }
}

// Sets the forced path and the table it implies. Caller holds g_mutex.
void SetForcedLocked(GemmPath path) {
  g_forced.store(path);
  const KernelIsa best = BestKernelIsa();
  const KernelIsa cap = path == GemmPath::kAuto ? best : PathIsa(path);
  g_table.store(&internal::KernelTableFor(cap < best ? cap : best));
  g_forced_set = true;
}

// First use: RWKV_EMBED_GEMM_PATH, if set. A bad value throws (every time, until fixed).
void InitFromEnvironment() {
  std::lock_guard lock(g_mutex);
  if (g_forced_set) return;
  GemmPath path = GemmPath::kAuto;
  if (const char* env = std::getenv("RWKV_EMBED_GEMM_PATH"); env != nullptr && *env != '\0') {
    try {
      path = ParseGemmPath(env);
    } catch (const UsageError& e) {
      throw UsageError(std::string("RWKV_EMBED_GEMM_PATH: ") + e.what());
    }
    CheckAvailable(path, "RWKV_EMBED_GEMM_PATH");
  }
  SetForcedLocked(path);
}

}  // namespace

std::string_view KernelIsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kPortable:
      return "portable";
    case KernelIsa::kAvx2:
      return "avx2";
    case KernelIsa::kAvx512:
      return "avx512";
  }
  return "?";
}

KernelIsa BestKernelIsa() {
  const CpuFeatures& f = DetectCpuFeatures();
  return f.avx512 ? KernelIsa::kAvx512 : f.avx2 ? KernelIsa::kAvx2 : KernelIsa::kPortable;
}

KernelIsa ActiveKernelIsa() { return internal::ActiveKernels().isa; }

void ForceGemmPath(GemmPath path) {
  if (path != GemmPath::kAuto) CheckAvailable(path, "--gemm-path");
  std::lock_guard lock(g_mutex);
  SetForcedLocked(path);
}

GemmPath ForcedGemmPath() {
  if (g_table.load(std::memory_order_acquire) == nullptr) InitFromEnvironment();
  return g_forced.load(std::memory_order_relaxed);
}

namespace internal {

const KernelTable& ActiveKernels() {
  const KernelTable* t = g_table.load(std::memory_order_acquire);
  if (t == nullptr) {
    InitFromEnvironment();
    t = g_table.load(std::memory_order_acquire);
  }
  return *t;
}

}  // namespace internal
}  // namespace rwkv_embed::kernels
