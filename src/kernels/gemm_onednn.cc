// The oneDNN GEMM paths: Debian's libdnnl matmul on the weights exactly as stored. W[n, k]
// row-major is, read as the K x N "weights" operand, the format tag `ba` (strides {1, K}), so no
// copy or reorder of W is made; x is rounded to BF16 into a per-call buffer (BF16 path) or used
// as is (F32 path); y is written in place. Primitives are cached per exact (m, n, k, dtype), a
// bounded LRU (PrimitiveCache): creating one costs ~0.1 ms, and a runtime-M primitive falls back to
// oneDNN's slower gemm:jit kernel whose rows depend on m. Debian's libdnnl is built with OpenMP
// (libgomp, the runtime we use), so it runs on omp_get_max_threads() threads as set by --threads.
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "core/error.h"
#include "core/matrix.h"
#include "core/random.h"
#include "kernels/gemm_internal.h"
#include "kernels/gemm_simd.h"
#include "kernels/onednn.h"

#ifdef RWKV_EMBED_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace rwkv_embed::kernels {

#ifdef RWKV_EMBED_HAVE_DNNL
namespace {

using dnnl::memory;

dnnl::engine& Engine() {
  static dnnl::engine engine = [] {
    dnnl::set_primitive_cache_capacity(0);  // PrimitiveCache below is the only cache
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

memory::data_type ComputeType(bool bf16) {
  return bf16 ? memory::data_type::bf16 : memory::data_type::f32;
}

struct Primitive {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul matmul;
};

std::shared_ptr<const Primitive> CreatePrimitive(int64_t m, int64_t n, int64_t k, bool bf16) {
  const memory::desc src({m, k}, ComputeType(bf16), memory::format_tag::ab);
  const memory::desc wei({k, n}, ComputeType(bf16), memory::format_tag::ba);
  const memory::desc dst({m, n}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), Engine());
  return std::make_shared<const Primitive>(Primitive{pd, dnnl::matmul(pd)});
}

// Thread-safe cache of primitives by shape, least recently used first out. Each primitive holds
// its JIT-compiled kernels (~60 KB), and a server's packed batches bring a new m with almost every
// batch: a cache of thousands of entries grew a server by ~65 MB per 10k requests. The capacity
// covers every weight shape of a few models at the steady m of packed batches (and their last,
// shorter batch); a miss costs ~0.1 ms. oneDNN's own primitive cache is turned off (Engine()), so
// that this is the only one.
class PrimitiveCache {
 public:
  std::shared_ptr<const Primitive> Get(int64_t m, int64_t n, int64_t k, bool bf16) {
    const Key key{m, n, k, bf16};
    std::lock_guard lock(mutex_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);  // now the most recently used
      return it->second->second;
    }
    if (order_.size() >= internal::kOneDnnPrimitiveCacheCapacity) {
      index_.erase(order_.back().first);
      order_.pop_back();  // callers still running it hold their own reference
    }
    order_.emplace_front(key, CreatePrimitive(m, n, k, bf16));
    index_.emplace(key, order_.begin());
    return order_.front().second;
  }
  size_t size() {
    std::lock_guard lock(mutex_);
    return order_.size();
  }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, bool>;
  using Entry = std::pair<Key, std::shared_ptr<const Primitive>>;
  std::mutex mutex_;
  std::list<Entry> order_;  // most recently used first
  std::map<Key, std::list<Entry>::iterator> index_;
};

PrimitiveCache& Cache() {
  static PrimitiveCache cache;
  return cache;
}

void Execute(const Primitive& p, const void* src, const void* wei, float* dst) {
  dnnl::stream stream(Engine());
  // oneDNN's memory objects take non-const handles; it never writes src or weights.
  memory s(p.pd.src_desc(), Engine(), const_cast<void*>(src));
  memory w(p.pd.weights_desc(), Engine(), const_cast<void*>(wei));
  memory d(p.pd.dst_desc(), Engine(), dst);
  p.matmul.execute(stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, d}});
  stream.wait();
}

RWKV_TARGET_AVX512_BF16 void ToBf16Avx512(const float* x, int64_t count, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  }
  if (i < count) {
    const auto mask = static_cast<__mmask16>((1u << (count - i)) - 1);
    _mm256_mask_storeu_epi16(out + i, mask,
                             (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

// out = BF16(x), round to nearest even; rows split across threads for large inputs.
void ToBf16(const float* x, int64_t rows, int64_t cols, uint16_t* out) {
  const bool hw = DetectCpuFeatures().avx512_bf16;
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t{1} << 18))
  for (int64_t r = 0; r < rows; ++r) {
    if (hw) {
      ToBf16Avx512(x + r * cols, cols, out + r * cols);
    } else {
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = F32ToBf16(x[r * cols + c]);
    }
  }
}

bool Probe(bool bf16) {
  try {
    const std::string impl = CreatePrimitive(16, 64, 64, bf16)->pd.impl_info_str();
    return !impl.starts_with("ref");  // the reference kernels are far slower than ours
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace

namespace internal {

size_t OneDnnCachedPrimitives() { return Cache().size(); }

bool OneDnnAvailable(bool bf16) {
  static const bool f32_ok = Probe(false);
  static const bool bf16_ok = Probe(true);
  return bf16 ? bf16_ok : f32_ok;
}

void GemmOneDnn(const float* x, int64_t m, const WeightMatrix& w, float* y, bool bf16) {
  try {
    const auto p = Cache().Get(m, w.rows, w.cols, bf16);
    if (bf16) {
      // Kept per calling thread and only grown: a fresh buffer per call would be a fresh mmap
      // (page faults on every product; up to m x k x 2 bytes = 29 MB for Finch's FFN at m = 2048).
      thread_local AlignedVector<uint16_t> xb;
      const auto need = static_cast<size_t>(m * w.cols);
      if (xb.size() < need) xb.resize(need);
      ToBf16(x, m, w.cols, xb.data());
      Execute(*p, xb.data(), w.data, y);
    } else {
      Execute(*p, x, w.data, y);
    }
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN matmul failed: ") + e.what());
  }
}

}  // namespace internal

std::string OneDnnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

OneDnnTiming TimeOneDnnMatmul(int64_t m, int64_t n, int64_t k, bool bf16, int repetitions) {
  OneDnnTiming t;
  try {
    const auto p = CreatePrimitive(m, n, k, bf16);
    t.impl = p->pd.impl_info_str();
    PortableRng rng(7);
    auto uniform = [&rng] { return static_cast<float>(rng.Next() >> 40) * 0x1.0p-23f - 1.0f; };
    AlignedVector<float> xf(static_cast<size_t>(bf16 ? 0 : m * k)),
        wf(static_cast<size_t>(bf16 ? 0 : n * k)), y(static_cast<size_t>(m * n));
    AlignedVector<uint16_t> xb(static_cast<size_t>(bf16 ? m * k : 0)),
        wb(static_cast<size_t>(bf16 ? n * k : 0));
    for (auto& v : xf) v = uniform();
    for (auto& v : wf) v = uniform();
    for (auto& v : xb) v = F32ToBf16(uniform());
    for (auto& v : wb) v = F32ToBf16(uniform());
    const void* src = bf16 ? static_cast<const void*>(xb.data()) : xf.data();
    const void* wei = bf16 ? static_cast<const void*>(wb.data()) : wf.data();
    Execute(*p, src, wei, y.data());  // warm-up
    t.best_s = 1e30;
    for (int r = 0; r < repetitions; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      Execute(*p, src, wei, y.data());
      t.best_s = std::min(
          t.best_s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    t.gflops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) /
               t.best_s * 1e-9;
    t.ran = true;
  } catch (const dnnl::error& e) {
    t.message = std::string("oneDNN: ") + e.what();
  }
  return t;
}

#else  // no oneDNN in this build

namespace internal {
bool OneDnnAvailable(bool /*bf16*/) { return false; }
size_t OneDnnCachedPrimitives() { return 0; }
void GemmOneDnn(const float* /*x*/, int64_t /*m*/, const WeightMatrix& /*w*/, float* /*y*/,
                bool /*bf16*/) {
  throw UsageError("this build has no oneDNN (libdnnl-dev was not found at configure time)");
}
}  // namespace internal

std::string OneDnnVersion() { return ""; }

OneDnnTiming TimeOneDnnMatmul(int64_t /*m*/, int64_t /*n*/, int64_t /*k*/, bool /*bf16*/,
                              int /*repetitions*/) {
  OneDnnTiming t;
  t.message = "this build has no oneDNN (libdnnl-dev was not found at configure time)";
  return t;
}

#endif

}  // namespace rwkv_embed::kernels
