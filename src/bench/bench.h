// `rwkv-embed bench`: throughput, latency, memory and efficiency of the embedding forward pass on
// one model, per thread count, reported like `llama-bench -o md|json` (one row per test and
// thread count).
//
// Tests, each run `repetitions` times after one untimed warm-up forward that pages in the weights:
//   pp<L>        one sequence of L random (seeded) token ids: latency-bound, every weight read once
//   pp<L>x<B>    B such sequences packed into one batch of <= batch_tokens tokens
//   mrpc-dev     the distinct sentences of MRPC dev (or of its first `pairs` pairs), tokenized and
//                embedded in batches of batch_tokens, mean of every layer from one pass (what the
//                evaluation does); seconds per pair = time / pairs
//   mrpc-pair    the first `latency_pairs` pairs embedded one pair per call: p50/p99 latency
// Achieved GFLOP/s = ForwardFlops(tokens) / time, as a percentage of a peak measured outside this
// project's kernels in the same run: the best of oneDNN's BF16 and FP32 matmul on the model's
// largest weight shape (named in the output). kernels::MatMulT on the same shape is reported
// beside it. The GEMM paths are chosen (measured, or read from the cache) right after the
// warm-up forward, before any timed test, and each row names the paths its products ran on; the
// exponent of time vs length is fitted on the pp<L> rows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/gemm_autotune.h"

namespace rwkv_embed::bench {

struct BenchOptions {
  std::filesystem::path model_dir;
  std::filesystem::path vocab;     // default: model_dir/rwkv_vocab_v20230424.txt
  std::filesystem::path data_dir;  // folder holding mrpc/dev.tsv; empty: no sentence tests
  std::vector<int> threads;        // empty: every core
  std::vector<int64_t> lengths = {32, 128, 512, 2048};
  int64_t batch_tokens = 2048;  // the embed default
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kBF16;
  int repetitions = 3;
  int64_t pairs = 0;           // MRPC dev pairs for mrpc-dev (0: all 408)
  int64_t latency_pairs = 50;  // pairs for mrpc-pair (0: none; capped at the dev size)
  // GEMM peaks: y[m, n] = x[m, k] W[n, k]^T; m = 0 skips the measurement, n = k = 0 takes the
  // model's largest weight shape (intermediate x hidden).
  int64_t gemm_m = 512, gemm_n = 0, gemm_k = 0;
  uint64_t seed = 0;
  std::function<void(const std::string&)> log;  // progress lines (optional)
};

struct BenchRow {
  std::string test;
  int threads = 0;
  int64_t sequences = 0;          // per run
  int64_t tokens = 0;             // per run
  int64_t pairs = 0;              // MRPC rows: pairs per run
  double flops = 0;               // per run (ForwardFlops)
  std::vector<double> samples_s;  // one wall time per run (mrpc-pair: one per pair)
  std::string paths;              // GEMM paths by share of the row's FLOPs ("onednn-bf16 97%, ...")
};

// kernels::MatMulT on a BF16 weight matrix (this project's own GEMM).
struct GemmPeak {
  int threads = 0;
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kF32;
  int64_t m = 0, n = 0, k = 0;
  std::string path;  // the kernel MatMulT chose (kernels::SelectGemmPath)
  std::vector<double> samples_s;
  double gflops = 0;  // best run of both rounds (before and after the model tests)
};

// The outside peak at one thread count: oneDNN's own matmul (kernels::TimeOneDnnMatmul) at BF16
// and FP32 on the same shape, best of both rounds; `source` names the faster.
struct OutsidePeak {
  int threads = 0;
  int64_t m = 0, n = 0, k = 0;
  double bf16_gflops = 0, f32_gflops = 0;
  std::string bf16_impl, f32_impl;
  std::string source;  // "oneDNN 2.6.3 bf16 (brg:avx512_core_bf16)"; empty when none ran
  double gflops = 0;   // max(bf16_gflops, f32_gflops)
};

struct LengthScaling {
  int threads = 0;
  std::vector<int64_t> lengths;
  std::vector<double> seconds;  // mean time of pp<L>
  double exponent = 0, r_squared = 0;
};

struct BenchReport {
  // Machine and build.
  std::string cpu;
  int cores = 0;
  std::string version;
  std::string build_commit;
  std::string timestamp;  // UTC, ISO 8601
  // Model.
  std::string model_dir, model_description;
  int64_t weight_bytes = 0;       // tensor data in the checkpoint
  int64_t weight_file_bytes = 0;  // its safetensors file(s): what peak RSS is compared with
  int64_t projection_params = 0;  // the FLOP basis (ProjectionParams)
  double flops_per_token = 0;     // ForwardFlops(1)
  int64_t hidden_size = 0, num_layers = 0, vocab_size = 0;
  std::string model_name;  // llama-bench style: "rwkv6 1.60B BF16"
  int64_t params = 0;      // matrix parameters: projections, embeddings, LM head
  // Settings.
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kBF16;
  int64_t batch_tokens = 0;
  int repetitions = 0;
  uint64_t seed = 0;
  // Load and memory.
  double load_s = 0;           // RwkvEmbedder::Load: map weights, read tokenizer
  double first_forward_s = 0;  // warm-up pp<min L> right after loading (page faults included)
  int64_t peak_rss_bytes = 0;  // VmHWM after every model test, before the GEMM peak buffers
  // GEMM path choice (kernels/gemm_autotune.h), before the timed tests.
  double autotune_s = 0;  // wall time spent measuring (0 when every choice came from the cache)
  std::string autotune_cache;
  std::vector<kernels::GemmTuneEntry> gemm_choices;
  // Results.
  std::vector<BenchRow> rows;
  std::vector<GemmPeak> gemm_peaks;
  std::vector<OutsidePeak> outside_peaks;
  std::vector<LengthScaling> scaling;
  std::vector<std::string> notes;  // skipped tests and why
};

// Runs everything. Throws UsageError for bad options; loader errors propagate.
BenchReport RunBench(const BenchOptions& options);

// Derived numbers of a row.
struct RowStats {
  double avg_s = 0, stddev_s = 0;    // per run
  double avg_ts = 0, stddev_ts = 0;  // tokens/s per run
  double sentences_per_s = 0;        // sequences / avg_s
  double seconds_per_pair = 0;       // MRPC rows; 0 otherwise
  double p50_s = 0, p99_s = 0;       // mrpc-pair only (per pair)
  double gflops = 0;                 // flops / avg_s
  double pct_of_peak = 0;            // of the outside peak at the same threads; 0 if none
};
RowStats ComputeRowStats(const BenchRow& row, const BenchReport& report);

std::string PrecisionName(kernels::MatMulPrecision p);  // "f32" | "bf16"

nlohmann::json ToJson(const BenchReport& report);
std::string ToMarkdown(const BenchReport& report);

}  // namespace rwkv_embed::bench
