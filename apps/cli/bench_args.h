// The options of `rwkv-embed bench`, shared by its two modes: the forward-pass benchmark
// (cmd_bench.cc) and `bench --mpi`, the scaling of rwkv-embed-mpi (cmd_bench_mpi.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rwkv_embed::cli {

struct BenchArgs {
  std::string model, vocab, data_dir, threads, lengths = "32,128,512,2048", precision = "bf16",
                                               format = "md", output, gemm_shape = "512,0,0",
                                               gemm_path;
  int64_t batch_tokens = 2048, pairs = 0, latency_pairs = 50;
  int repetitions = 3;
  uint64_t seed = 0;
  bool progress = false;
  // bench --mpi: rank counts, the input, options forwarded to `embed`, the cluster model.
  bool mpi_requested = false;  // --mpi given (its list may be empty: an error then)
  std::string mpi, input, layers = "final", pooling = "mean", tokenizer, mpi_exe;
  int64_t shard_bytes = 0;
  double cluster_nodes = 64, cluster_sentences = 1e8;
};

// "1,2,4" -> {1, 2, 4}; every item a positive integer (zero allowed where allow_zero).
// UsageError naming the option otherwise.
std::vector<int64_t> ParseIntList(const std::string& text, const std::string& option,
                                  bool allow_zero = false);

// Checks -o and --output before any work (a typo must not cost a whole benchmark).
void CheckBenchOutput(const BenchArgs& a);
// Writes the report as -o and --output ask (stdout when --output is empty).
void WriteBenchOutput(const BenchArgs& a, const std::string& md, const std::string& json);

// `bench --mpi`: runs rwkv-embed-mpi embed under mpirun for each rank count (cmd_bench_mpi.cc).
int RunBenchMpi(const BenchArgs& a);

}  // namespace rwkv_embed::cli
