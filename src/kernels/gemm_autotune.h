// GEMM path choice by measurement on the running machine. The first time MatMulT meets a weight
// shape (n, k), dtype and precision, it times every path that can take the problem
// (kernels/gemm.h; the portable loop only when nothing else runs) on that shape with synthetic
// data for a short time, and keeps the fastest. Choices are cached per CPU identity, build and
// path set in $RWKV_EMBED_CACHE_DIR, else $XDG_CACHE_HOME/rwkv-embed, else ~/.cache/rwkv-embed
// (file gemm-<hash>.json; RWKV_EMBED_CACHE_DIR=off disables it), so the next run starts at once.
//
// One choice for every m and every thread count, timed at m = 384 with W cut to at most 8 MiB
// and 0.3 GFLOP per run: one warm-up run per candidate, then two or three rounds timing each
// candidate in turn (best time kept). A choice whose winner's two best runs differ by more than
// 25%, or whose threads got less than 70% of their wall time as CPU time while being preempted
// (a machine busy with other work), is not trusted: the fixed preference order decides and nothing
// is cached. The paths round and sum differently, so a choice per m range or per thread count would
// make a row's result depend on how many rows it is multiplied with or on --threads: with one
// choice, embeddings are independent of batching and threads, bit for bit, at either precision.
// (The m ranges below only label entries of the table; the cache format keeps them.) Measuring
// stops once kGemmAutotuneBudgetSeconds (1 s) of wall time have been spent in a process (overrun:
// at most the warm-up runs of the entry in progress); problems left take a fixed preference order
// and are not cached, so a later run measures them. A Finch-1B6 model has 7 weight shapes, i.e. 42
// choices (7 FP32, 35 BF16); `bench` and `info --gemm` report the time spent.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm.h"

namespace rwkv_embed::kernels {

inline constexpr double kGemmAutotuneBudgetSeconds = 1.0;
inline constexpr int kGemmMBuckets = 5;

// The m range of m rows: 0..4 (see above); -1 stands for "every m".
int GemmMBucket(int64_t m);
std::string GemmMBucketName(int bucket);  // "m<=8", ..., "m>512", "any m"

struct GemmTuneEntry {
  int64_t n = 0, k = 0;
  DType dtype = DType::kF32;
  MatMulPrecision precision = MatMulPrecision::kF32;
  int bucket = -1;
  int threads = 0;  // 0: every thread count (FP32 problems)
  GemmPath path = GemmPath::kPortable;
  std::vector<std::pair<GemmPath, double>> gflops;  // every candidate timed (empty: not timed)
  // "measured", "cache", "only candidate", "default (budget spent)", "default (timings unstable)",
  // "default (machine busy: N% CPU share)"
  std::string source;
};

// The choices made or loaded so far in this process, ordered by shape, precision, bucket.
std::vector<GemmTuneEntry> GemmTuneTable();

// Chooses (measuring where needed) every m range of every weight shape MatMulT has seen in this
// process, at the current OpenMP thread count, so that later calls measure nothing.
void TuneSeenGemmShapes();

// Whether a measurement that took `wall_seconds` with `threads` OpenMP threads but only
// `cpu_seconds` of process CPU time, its threads preempted `preemptions` times (involuntary
// context switches), ran on a machine busy with other work: a CPU share below 70% *and* more than
// 50 preemptions per second (a small problem that leaves threads idle has the low share alone).
// Such timings are steady but uniformly slow; their winner is not trusted or cached.
bool GemmTimingMachineBusy(double cpu_seconds, double wall_seconds, int threads,
                           int64_t preemptions);

// Whether unstable timings fall back to the preference order (default on). Tests switch it off:
// a busy test machine must not decide what they check.
void SetGemmTimingStabilityCheck(bool on);

// Wall time spent measuring in this process.
double GemmAutotuneSeconds();

// Forgets every choice, seen shape and the time spent (tests; the cache file is kept).
void ResetGemmAutotune();

// ---- One choice for several processes (MPI ranks) -----------------------------------------------
// Processes that must give bit-identical embeddings must multiply with the same paths, but each
// would measure its own. One process exports its whole-shape choices (JSON text: a list of
// entries as in the cache file); the others install them. Installing also freezes autotuning in
// that process: a shape missing from the list takes the fixed preference order, never a
// measurement, in every process alike. Throws UsageError when a path cannot run here (another
// CPU: pass the same --gemm-path to every process instead) and FormatError on malformed text.
std::string ExportGemmChoices();
void InstallGemmChoices(const std::string& json);
// Choices exported by another process of this build on this machine (e.g. the `gemm_choices` of
// an MPI run's accounting) written as the cache file of `dir`: processes started later with
// RWKV_EMBED_CACHE_DIR=dir read them and measure nothing (`bench --mpi` gives every run the
// first run's paths). Returns the file; FormatError on malformed text, IoError when unwritable.
std::filesystem::path SaveGemmChoicesAsCache(const std::string& json,
                                             const std::filesystem::path& dir);

// ---- The cache file ---------------------------------------------------------------------------
struct GemmCacheIdentity {
  std::string cpu;    // CpuIdentity() and the detected features
  std::string build;  // rwkv-embed version and commit, oneDNN version
  std::string paths;  // the available paths
  bool operator==(const GemmCacheIdentity&) const = default;
};
GemmCacheIdentity CurrentGemmCacheIdentity();

// The cache folder from the environment (see above); empty when caching is off.
std::filesystem::path GemmCacheDir();
// dir / "gemm-<16 hex digits of a hash of the identity>.json".
std::filesystem::path GemmCacheFile(const std::filesystem::path& dir, const GemmCacheIdentity& id);

// Writes the entries (atomically: a temporary file renamed into place). Throws IoError.
void SaveGemmCache(const std::filesystem::path& file, const GemmCacheIdentity& id,
                   const std::vector<GemmTuneEntry>& entries);
// The entries of a cache file written for `id`; empty when the file is absent, unreadable,
// malformed or written for another identity (a cache is only ever a hint). Entries naming a path
// this process cannot run are dropped.
std::vector<GemmTuneEntry> LoadGemmCache(const std::filesystem::path& file,
                                         const GemmCacheIdentity& id);

// What happened to the cache file in this process ("read 35 entries from F", "written to F",
// "disabled (RWKV_EMBED_CACHE_DIR=off)", "could not write F: ...").
std::string GemmCacheStatus();

}  // namespace rwkv_embed::kernels
