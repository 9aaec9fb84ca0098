// GEMM micro-benchmarks: every MatMulT path, oneDNN 2.6 matmul and OpenBLAS sgemm on the RWKV-6
// Finch-1B6 (C = 2048) weight shapes, plus register-only throughput ceilings ("peak") of the
// AVX-512 FMA, AVX512-BF16 and AMX-BF16 units. Counter GFLOP/s = 2*m*n*k / wall time.
//
//   build/release/bench/gemm_bench --benchmark_filter='att_2048x2048/m:512/'
//       --benchmark_repetitions=3 --benchmark_min_time=0.2   (one command line)
//
// The shared 2-core machine is noisy: compare the best (max) of several repetitions.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm.h"
#include "kernels/gemm_internal.h"

#ifdef RWKV_EMBED_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif
#ifdef RWKV_EMBED_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace rwkv_embed::kernels {
namespace {

struct Shape {
  const char* name;
  int64_t n, k;
};

// Per token per layer of Finch-1B6: r,k,v,g,o and channel-mix receptance (2048x2048), channel-mix
// key (7168x2048) and value (2048x7168), the LoRA pairs; then the tiny test models' C = 64, 128.
constexpr Shape kShapes[] = {{"att_2048x2048", 2048, 2048},     {"ffn_key_7168x2048", 7168, 2048},
                             {"ffn_val_2048x7168", 2048, 7168}, {"maa_w1_160x2048", 160, 2048},
                             {"maa_w2_2048x32", 2048, 32},      {"decay_w1_64x2048", 64, 2048},
                             {"decay_w2_2048x64", 2048, 64},    {"tiny_64x64", 64, 64},
                             {"tiny_128x128", 128, 128}};
constexpr int64_t kMs[] = {16, 32, 128, 512, 2048};
constexpr int64_t kMaxM = 2048;

// Random operands per shape, made once: BF16 weights as a checkpoint stores them, and (only for
// the FP32 library baselines, which would need one at run time too) an FP32 copy.
struct Operands {
  std::vector<uint16_t> w_bf16;
  std::vector<float> w_f32;
  std::vector<float> x;          // [kMaxM, k]
  std::vector<uint16_t> x_bf16;  // the same, rounded (oneDNN's BF16 input)
};

const Operands& GetOperands(const Shape& s) {
  static std::map<std::string, std::unique_ptr<Operands>> cache;
  auto& slot = cache[s.name];
  if (!slot) {
    slot = std::make_unique<Operands>();
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    slot->w_bf16.resize(s.n * s.k);
    slot->w_f32.resize(s.n * s.k);
    for (int64_t i = 0; i < s.n * s.k; ++i) {
      slot->w_bf16[i] = F32ToBf16(0.05f * u(rng));
      slot->w_f32[i] = Bf16ToF32(slot->w_bf16[i]);
    }
    slot->x.resize(kMaxM * s.k);
    slot->x_bf16.resize(kMaxM * s.k);
    for (int64_t i = 0; i < kMaxM * s.k; ++i) {
      slot->x[i] = u(rng);
      slot->x_bf16[i] = F32ToBf16(slot->x[i]);
    }
  }
  return *slot;
}

void SetFlops(benchmark::State& state, int64_t m, const Shape& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * double(m) * double(s.n) * double(s.k),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BenchPath(benchmark::State& state, GemmPath path, MatMulPrecision precision, Shape s,
               int64_t m, int threads) {
  if (!GemmPathAvailable(path)) {
    state.SkipWithError("path not available on this CPU");
    return;
  }
  const Operands& op = GetOperands(s);
  omp_set_num_threads(threads);
  std::vector<float> y(m * s.n);
  const WeightMatrix w{DType::kBF16, op.w_bf16.data(), s.n, s.k};
  for (auto _ : state) {
    MatMulTWithPath(path, op.x.data(), m, w, y.data(), precision);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetFlops(state, m, s);
}

#ifdef RWKV_EMBED_HAVE_DNNL
// oneDNN matmul, primitive made once outside the timed loop. W[n, k] row-major is the [k, n]
// weights tensor in "ba" layout, so no copy is made on our side. bf16: x pre-rounded to BF16
// outside the loop (oneDNN 2.6 matmul has no f32 x bf16 mix), which flatters oneDNN slightly.
void BenchOneDnn(benchmark::State& state, bool bf16, Shape s, int64_t m, int threads) {
  using dnnl::memory;
  const Operands& op = GetOperands(s);
  omp_set_num_threads(threads);
  try {
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream strm(eng);
    const auto dt = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
    memory::desc src_md({m, s.k}, dt, memory::format_tag::ab);
    memory::desc wei_md({s.k, s.n}, dt, memory::format_tag::ba);
    memory::desc dst_md({m, s.n}, memory::data_type::f32, memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_md, dst_md), eng);
    dnnl::matmul prim(pd);
    std::vector<float> y(m * s.n);
    void* src = bf16 ? static_cast<void*>(const_cast<uint16_t*>(op.x_bf16.data()))
                     : static_cast<void*>(const_cast<float*>(op.x.data()));
    void* wei = bf16 ? static_cast<void*>(const_cast<uint16_t*>(op.w_bf16.data()))
                     : static_cast<void*>(const_cast<float*>(op.w_f32.data()));
    memory src_m(src_md, eng, src), wei_m(wei_md, eng, wei), dst_m(dst_md, eng, y.data());
    for (auto _ : state) {
      prim.execute(strm, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DST, dst_m}});
      strm.wait();
      benchmark::ClobberMemory();
    }
    state.SetLabel(pd.impl_info_str());
  } catch (const dnnl::error& e) {
    state.SkipWithError(e.what());
    return;
  }
  SetFlops(state, m, s);
}
#endif

#ifdef RWKV_EMBED_HAVE_OPENBLAS
// OpenBLAS sgemm needs FP32 weights: a widened copy the runtime must not make (RSS); measured
// only as a baseline.
void BenchOpenBlas(benchmark::State& state, Shape s, int64_t m, int threads) {
  const Operands& op = GetOperands(s);
  openblas_set_num_threads(threads);
  std::vector<float> y(m * s.n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(s.n),
                static_cast<int>(s.k), 1.0f, op.x.data(), static_cast<int>(s.k), op.w_f32.data(),
                static_cast<int>(s.k), 0.0f, y.data(), static_cast<int>(s.n));
    benchmark::ClobberMemory();
  }
  SetFlops(state, m, s);
}
#endif

// ---- Register-only throughput ceilings ---------------------------------------------------------
constexpr int64_t kPeakIters = 1 << 16;

// 12 independent accumulator chains (FMA latency 4 x 2 ports = 8 needed); a, b are run-time
// values so nothing folds.
#define RWKV_PEAK_BODY(OP)                                                                        \
  __m512 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z, c9 = z, c10 = z, \
         c11 = z;                                                                                 \
  for (int64_t it = 0; it < kPeakIters; ++it) {                                                   \
    c0 = OP(c0);                                                                                  \
    c1 = OP(c1);                                                                                  \
    c2 = OP(c2);                                                                                  \
    c3 = OP(c3);                                                                                  \
    c4 = OP(c4);                                                                                  \
    c5 = OP(c5);                                                                                  \
    c6 = OP(c6);                                                                                  \
    c7 = OP(c7);                                                                                  \
    c8 = OP(c8);                                                                                  \
    c9 = OP(c9);                                                                                  \
    c10 = OP(c10);                                                                                \
    c11 = OP(c11);                                                                                \
  }                                                                                               \
  const __m512 s =                                                                                \
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),    \
                                  _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7))),   \
                    _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));               \
  alignas(64) float lanes[16];                                                                    \
  _mm512_store_ps(lanes, s);                                                                      \
  return lanes[0]

__attribute__((target("avx512f,fma"))) float FmaPeakKernel(float av, float bv) {
  const __m512 z = _mm512_setzero_ps(), a = _mm512_set1_ps(av), b = _mm512_set1_ps(bv);
#define RWKV_FMA(c) _mm512_fmadd_ps(a, b, c)
  RWKV_PEAK_BODY(RWKV_FMA);
#undef RWKV_FMA
}

__attribute__((target("avx512f,avx512bf16"))) float Bf16PeakKernel(float av, float bv) {
  const __m512 z = _mm512_setzero_ps();
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(av), _mm512_set1_ps(av));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(bv), _mm512_set1_ps(bv));
#define RWKV_DP(c) _mm512_dpbf16_ps(c, a, b)
  RWKV_PEAK_BODY(RWKV_DP);
#undef RWKV_DP
}
#undef RWKV_PEAK_BODY

__attribute__((target("amx-tile,amx-bf16"))) float AmxPeakKernel() {
  rwkv_embed::kernels::internal::ConfigureAmxTiles();
  alignas(64) static thread_local uint16_t ab[16 * 32];
  for (auto& v : ab) v = 0x3c00;
  _tile_loadd(4, ab, 64);
  _tile_loadd(5, ab, 64);
  _tile_loadd(6, ab, 64);
  _tile_loadd(7, ab, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t it = 0; it < kPeakIters / 16; ++it) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float out[256];
  _tile_stored(0, out, 64);
  rwkv_embed::kernels::internal::ReleaseAmxTiles();
  return out[0];
}

// flops per kernel call: 12 vectors x 16 lanes x 2 (FMA) or x 4 (2 BF16 products + 2 adds... we
// count 2 flops per multiply-add: vdpbf16ps = 32 multiply-adds); AMX: 4 tiles x 16x16x32 MACs.
void BenchPeak(benchmark::State& state, int which, int threads) {
  const GemmPath need = which == 0   ? GemmPath::kAvx512F32
                        : which == 1 ? GemmPath::kAvx512Bf16
                                     : GemmPath::kAmxBf16;
  if (!GemmPathAvailable(need)) {
    state.SkipWithError("not available on this CPU");
    return;
  }
  const double flops_per_call =
      which == 0   ? 12.0 * 16 * 2 * kPeakIters
      : which == 1 ? 12.0 * 32 * 2 * kPeakIters
                   : 4.0 * 16 * 16 * 32 * 2 * (static_cast<double>(kPeakIters) / 16.0);
  float sink = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += which == 0   ? FmaPeakKernel(1e-3f, 0.999f)
            : which == 1 ? Bf16PeakKernel(1e-3f, 0.999f)
                         : AmxPeakKernel();
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOP/s"] = benchmark::Counter(1e-9 * flops_per_call * threads,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void RegisterAll() {
  for (int which = 0; which < 3; ++which) {
    for (int t : {1, 2}) {
      const char* names[] = {"avx512_fma_f32", "avx512_dpbf16", "amx_tdpbf16"};
      benchmark::RegisterBenchmark(
          (std::string("peak/") + names[which] + "/threads:" + std::to_string(t)).c_str(),
          [which, t](benchmark::State& st) { BenchPeak(st, which, t); })
          ->UseRealTime();
    }
  }
  struct PathCase {
    const char* name;
    std::function<void(benchmark::State&, Shape, int64_t, int)> run;
    int64_t max_m;
  };
  const std::vector<PathCase> cases = {
      {"portable_f32",
       [](benchmark::State& st, Shape s, int64_t m, int t) {
         BenchPath(st, GemmPath::kPortable, MatMulPrecision::kF32, s, m, t);
       },
       128},
      {"avx2_f32",
       [](benchmark::State& st, Shape s, int64_t m, int t) {
         BenchPath(st, GemmPath::kAvx2F32, MatMulPrecision::kF32, s, m, t);
       },
       kMaxM},
      {"avx512_f32",
       [](benchmark::State& st, Shape s, int64_t m, int t) {
         BenchPath(st, GemmPath::kAvx512F32, MatMulPrecision::kF32, s, m, t);
       },
       kMaxM},
      // The oneDNN path as MatMulT runs it (x rounded to BF16 inside the timed call).
      {"onednn_bf16_path",
       [](benchmark::State& st, Shape s, int64_t m, int t) {
         BenchPath(st, GemmPath::kOneDnnBf16, MatMulPrecision::kBF16, s, m, t);
       },
       kMaxM},
      {"avx512_bf16",
       [](benchmark::State& st, Shape s, int64_t m, int t) {
         BenchPath(st, GemmPath::kAvx512Bf16, MatMulPrecision::kBF16, s, m, t);
       },
       kMaxM},
      {"amx_bf16",
       [](benchmark::State& st, Shape s, int64_t m, int t) {
         BenchPath(st, GemmPath::kAmxBf16, MatMulPrecision::kBF16, s, m, t);
       },
       kMaxM},
#ifdef RWKV_EMBED_HAVE_DNNL
      {"onednn_bf16",
       [](benchmark::State& st, Shape s, int64_t m, int t) { BenchOneDnn(st, true, s, m, t); },
       kMaxM},
      {"onednn_f32_wcopy",
       [](benchmark::State& st, Shape s, int64_t m, int t) { BenchOneDnn(st, false, s, m, t); },
       kMaxM},
#endif
#ifdef RWKV_EMBED_HAVE_OPENBLAS
      {"openblas_f32_wcopy",
       [](benchmark::State& st, Shape s, int64_t m, int t) { BenchOpenBlas(st, s, m, t); }, kMaxM},
#endif
  };
  for (const Shape& s : kShapes) {
    for (int64_t m : kMs) {
      for (int t : {1, 2}) {
        for (const PathCase& c : cases) {
          if (m > c.max_m) continue;
          const std::string name = std::string(c.name) + "/" + s.name + "/m:" + std::to_string(m) +
                                   "/threads:" + std::to_string(t);
          auto run = c.run;
          benchmark::RegisterBenchmark(name.c_str(),
                                       [run, s, m, t](benchmark::State& st) { run(st, s, m, t); })
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
}

}  // namespace
}  // namespace rwkv_embed::kernels

int main(int argc, char** argv) {
  rwkv_embed::kernels::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
