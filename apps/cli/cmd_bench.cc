// rwkv-embed bench: throughput, latency, memory and GFLOP/s of the embedding forward pass, as a
// Markdown table and/or JSON in the manner of `llama-bench -o md|json`.
#include <charconv>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "bench_args.h"
#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace rwkv_embed::cli {
namespace {

// OUT (any .md/.json extension dropped) -> OUT.md and OUT.json, for -o both.
std::string BothStem(std::string stem) {
  for (const char* ext : {".md", ".json"}) {
    if (stem.ends_with(ext)) stem.resize(stem.size() - std::string(ext).size());
  }
  return stem;
}

// bench --mpi: the rank counts and what runs under them.
CLI::Option* AddBenchMpiOptions(CLI::App* sub, BenchArgs* a) {
  auto* mpi =
      sub->add_option("--mpi", a->mpi,
                      "scaling of rwkv-embed-mpi embed: comma-separated rank counts, e.g. 1,2,4 "
                      "(on one machine: the overhead of sharding, not a speed-up)")
          ->expected(0, 1)
          ->default_str("1,2,4");
  sub->add_option("--input", a->input, "--mpi: sentences, one per line (or --data-dir: MRPC dev)");
  sub->add_option("--layers", a->layers, "--mpi: embed --layers")->capture_default_str();
  sub->add_option("--pooling", a->pooling, "--mpi: embed --pooling")->capture_default_str();
  sub->add_option("--tokenizer", a->tokenizer, "--mpi: embed --tokenizer (default: embed's)");
  sub->add_option("--shard-bytes", a->shard_bytes,
                  "--mpi: input bytes per shard (0: rwkv-embed-mpi's default)")
      ->capture_default_str()
      ->check(IntegerIn(0, kMaxCount));
  sub->add_option("--mpi-exe", a->mpi_exe,
                  "--mpi: the rwkv-embed-mpi to run (default: $RWKV_EMBED_MPI_EXE, else the one "
                  "beside this executable)");
  sub->add_option("--cluster-nodes", a->cluster_nodes, "--mpi: nodes P of the cluster model")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e9));
  sub->add_option("--cluster-sentences", a->cluster_sentences,
                  "--mpi: sentences S of the cluster model")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e18));
  return mpi;
}

// An option of one mode given in the other is a mistake, never silently ignored.
void CheckModeOptions(CLI::App* sub, bool mpi) {
  static const std::vector<std::string> kMpiOnly = {
      "--input",       "--layers",  "--pooling",       "--tokenizer",
      "--shard-bytes", "--mpi-exe", "--cluster-nodes", "--cluster-sentences"};
  static const std::vector<std::string> kForwardOnly = {
      "--lengths", "--repetitions", "--latency-pairs", "--gemm-shape", "--seed"};
  for (const std::string& name : mpi ? kForwardOnly : kMpiOnly) {
    if (sub->get_option(name)->count() > 0) {
      throw UsageError(name + (mpi ? " is not an option of bench --mpi" : " needs --mpi"));
    }
  }
}

int RunBench(const BenchArgs& a) {
  if (a.mpi_requested) return RunBenchMpi(a);
  ApplyGemmPath(a.gemm_path);
  if (a.precision != "f32" && a.precision != "bf16") {
    throw UsageError("--precision must be f32 or bf16");
  }
  CheckBenchOutput(a);
  bench::BenchOptions o;
  o.model_dir = a.model;
  o.vocab = a.vocab;
  o.data_dir = a.data_dir;
  if (!a.threads.empty()) {
    for (int64_t t : ParseIntList(a.threads, "--threads")) {
      if (t > 4096) throw UsageError("--threads: " + std::to_string(t) + " is more than 4096");
      o.threads.push_back(static_cast<int>(t));
    }
  }
  o.lengths = ParseIntList(a.lengths, "--lengths");
  const auto gemm = ParseIntList(a.gemm_shape, "--gemm-shape", /*allow_zero=*/true);
  if (gemm.size() != 3) {
    throw UsageError("--gemm-shape must be M,N,K (M = 0 skips; N = K = 0: the model's largest)");
  }
  o.gemm_m = gemm[0];
  o.gemm_n = gemm[1];
  o.gemm_k = gemm[2];
  o.batch_tokens = a.batch_tokens;
  o.precision =
      a.precision == "bf16" ? kernels::MatMulPrecision::kBF16 : kernels::MatMulPrecision::kF32;
  o.repetitions = a.repetitions;
  o.pairs = a.pairs;
  o.latency_pairs = a.latency_pairs;
  o.seed = a.seed;
  if (ProgressWanted(a.progress))
    o.log = [](const std::string& line) { std::cerr << line << "\n"; };

  const bench::BenchReport report = bench::RunBench(o);
  const std::string md = bench::ToMarkdown(report);
  const std::string json =
      bench::ToJson(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  WriteBenchOutput(a, md, json);
  return 0;
}

}  // namespace

std::vector<int64_t> ParseIntList(const std::string& text, const std::string& option,
                                  bool allow_zero) {
  std::vector<int64_t> values;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() ||
        v < (allow_zero ? 0 : 1)) {
      throw UsageError(option + ": '" + item + "' in '" + text + "' is not a " +
                       (allow_zero ? "non-negative" : "positive") + " integer");
    }
    values.push_back(v);
    start = comma + 1;
  }
  return values;
}

void CheckBenchOutput(const BenchArgs& a) {
  if (a.format != "md" && a.format != "json" && a.format != "both") {
    throw UsageError("-o must be md, json or both");
  }
  if (!a.output.empty() && a.format == "both") {
    CheckOutputFile(BothStem(a.output) + ".md", "--output");
    CheckOutputFile(BothStem(a.output) + ".json", "--output");
  } else if (!a.output.empty()) {
    CheckOutputFile(a.output, "--output");
  }
}

void WriteBenchOutput(const BenchArgs& a, const std::string& md, const std::string& json) {
  if (a.output.empty()) {
    if (a.format != "json") std::cout << md;
    if (a.format == "both") std::cout << "\n";
    if (a.format != "md") std::cout << json;
  } else if (a.format == "both") {
    WriteFileAtomically(BothStem(a.output) + ".md", md);
    WriteFileAtomically(BothStem(a.output) + ".json", json);
  } else {
    WriteFileAtomically(a.output, a.format == "md" ? md : json);
  }
}

Command RegisterBench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* sub = app.add_subcommand(
      "bench", "Benchmark the embedding forward pass (tokens/s, latency, RSS, GFLOP/s vs peak)");
  sub->add_option("--model", a->model, "model folder (config.json, model.safetensors)")->required();
  sub->add_option("--vocab", a->vocab, "vocabulary file (default: MODEL/rwkv_vocab_v20230424.txt)");
  sub->add_option("--data-dir", a->data_dir,
                  "folder holding mrpc/dev.tsv for the sentence tests (omitted: skipped)");
  sub->add_option("--threads", a->threads, "comma-separated thread counts (default: all cores)");
  sub->add_option("--lengths", a->lengths, "fixed sequence lengths (random token ids)")
      ->capture_default_str();
  sub->add_option("--batch-tokens", a->batch_tokens,
                  "token budget of a packed batch (pp<L>x<B> rows and mrpc-dev)")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--precision", a->precision, "matmul precision: f32 | bf16")
      ->capture_default_str();
  sub->add_option("--repetitions,-r", a->repetitions, "timed runs per test")
      ->capture_default_str()
      ->check(IntegerIn(1, 1000));
  sub->add_option("--pairs", a->pairs, "MRPC dev pairs in mrpc-dev (0: all 408)")
      ->capture_default_str()
      ->check(IntegerIn(0, kMaxCount));
  sub->add_option("--latency-pairs", a->latency_pairs,
                  "MRPC dev pairs embedded one at a time for p50/p99 latency (0: none)")
      ->capture_default_str()
      ->check(IntegerIn(0, kMaxCount));
  sub->add_option("--gemm-shape", a->gemm_shape,
                  "M,N,K of the GEMM peaks (oneDNN outside peak and MatMulT, W[N,K]); N = K = 0: "
                  "the model's largest weight shape; M = 0 skips them")
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "seed of the random token ids")
      ->capture_default_str()
      ->check(UnsignedInteger());
  sub->add_option("-o", a->format, "output format: md | json | both")
      ->capture_default_str()
      ->check(CLI::IsMember({"md", "json", "both"}));
  sub->add_option("--output", a->output,
                  "output file (default: stdout); with -o both, OUT.md and OUT.json");
  sub->add_flag("--progress", a->progress, "progress on stderr even when it is not a terminal");
  AddGemmPathOption(sub, &a->gemm_path);
  CLI::Option* mpi = AddBenchMpiOptions(sub, a.get());
  return {sub, [a, sub, mpi] {
            a->mpi_requested = mpi->count() > 0;
            CheckModeOptions(sub, a->mpi_requested);
            return RunBench(*a);
          }};
}

}  // namespace rwkv_embed::cli
