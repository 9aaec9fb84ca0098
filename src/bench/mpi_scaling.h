// `rwkv-embed bench --mpi`: how `rwkv-embed-mpi embed` scales over N ranks, read from the
// accounting each run writes (OUT.npy.run.json, docs/mpi.md#accounting-outnpyrunjson), and a
// model of the wall time of a cluster job built from the per-node rate (docs/mpi.md#estimate).
//
// On one machine the ranks share its cores: the efficiency measures the overhead of sharding
// (planning, line counting, a model per rank, coordination, the tail), not a speed-up. Every
// report says so (kOneMachineNote).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace rwkv_embed::bench {

inline constexpr const char* kOneMachineNote =
    "one machine: the ranks share its cores, so this measures the overhead of sharding "
    "(planning, line counting, a model per rank, coordination, the tail), not a speed-up";

// One run's accounting, as far as the report needs it.
struct MpiRun {
  int ranks = 0, threads_per_rank = 0;
  int64_t sentences = 0, shards = 0, tokens = 0;
  int64_t input_bytes = 0;     // sum of the shards' byte ranges
  double wall_s = 0;           // seconds.total
  double embed_loop_s = 0;     // seconds.embed_loop (the slowest rank's loop)
  double max_busy_s = 0;       // the busiest rank's time embedding shards
  double load_balance = 0;     // max / mean busy seconds of the ranks
  double longest_shard_s = 0;  // of shard_timings
  std::string gemm_choices;    // the JSON list rank 0 chose (kernels::ExportGemmChoices)

  double TokensPerWallSecond() const { return wall_s > 0 ? tokens / wall_s : 0; }
  double OutsideEmbeddingSeconds() const { return wall_s - max_busy_s; }
};

// Parses the text of a run.json; FormatError naming `source` and the field that is missing or
// malformed, DataError for a run that embedded nothing or was resumed (its tokens and times would
// cover only part of the input).
MpiRun ParseMpiRun(const std::string& text, const std::string& source);

// T(P) = fixed + S·k / (P·R) + tail: S sentences of k tokens on P nodes, one rank per node, each
// at the rate R measured here for the whole machine; fixed = the base run's time outside its
// embedding loop (model load, plan, line count, GEMM choice); tail = one shard of the size the
// sharded embed picks for that job (input / (16 P), 4 KiB .. 4 MiB) at rate R.
struct ClusterModel {
  int base_ranks = 0;              // the run R comes from
  double rate_tokens_per_s = 0;    // R = tokens / embed loop seconds
  double tokens_per_sentence = 0;  // k
  double bytes_per_sentence = 0;   // of the input, for the shard size
  double fixed_s = 0;
  double measured_longest_shard_s = 0;
  double nodes = 0, sentences = 0;  // P, S
  double shard_bytes = 0, tail_s = 0;
  double embed_s = 0;  // S·k / (P·R)
  double wall_s = 0;   // the estimate
};
// The model from `base` (throws DataError when it has no tokens or time to take a rate from).
ClusterModel FitClusterModel(const MpiRun& base, double nodes, double sentences);

struct MpiScalingReport {
  std::string version, build_commit, timestamp, cpu;
  int cores = 0, total_threads = 0;
  std::string model, input, mpirun, mpi_exe;
  std::vector<std::string> embed_options;  // forwarded to every run
  std::vector<MpiRun> runs;                // in the order run; efficiency is against runs[0]
  bool bit_identical = false;              // every output equal to runs[0]'s, byte for byte
  ClusterModel model_estimate;
};

// Checks that every run embedded the same sentences and tokens as runs[0] (DataError naming the
// rank counts otherwise) and picks the base of the cluster model: the 1-rank run, else runs[0].
const MpiRun& CheckRunsAgree(const std::vector<MpiRun>& runs);

// Byte offset of the first difference between two files, or -1 when they are identical (a
// shorter file differs at its end). IoError when either cannot be read.
int64_t FirstDifference(const std::filesystem::path& a, const std::filesystem::path& b);

nlohmann::json ToJson(const MpiScalingReport& report);
std::string ToMarkdown(const MpiScalingReport& report);

}  // namespace rwkv_embed::bench
