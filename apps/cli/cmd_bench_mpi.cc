// rwkv-embed bench --mpi: runs `rwkv-embed-mpi embed` under `mpirun -np N` for each N on the same
// input, checks that every output is bit-identical to the first's, and reports scaling and a
// cluster model from the runs' accounting (bench/mpi_scaling.h). Each run is a child process
// started from an argv (bench/child_process.h), writing into a scratch folder removed at the end.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench/child_process.h"
#include "bench/mpi_scaling.h"
#include "bench/process.h"
#include "bench_args.h"
#include "core/build_info.h"
#include "core/error.h"
#include "core/timing.h"
#include "data/pairs.h"
#include "kernels/gemm_autotune.h"

namespace rwkv_embed::cli {
namespace {

namespace fs = std::filesystem;

// A fresh folder under $TMPDIR, removed with everything in it when the benchmark ends.
class ScratchDir {
 public:
  ScratchDir() {
    std::string name = (fs::temp_directory_path() / "rwkv-embed-bench-mpi-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) throw IoError("cannot create a folder like " + name);
    path_ = name;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// What every run shares.
struct MpiSetup {
  std::vector<int64_t> ranks;
  int total_threads = 0;
  fs::path mpirun, exe, input;
  std::string model, input_label;
  std::vector<std::string> embed_options;
};

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

fs::path FindMpiExe(const BenchArgs& a) {
  std::string given = a.mpi_exe.empty() ? EnvOr("RWKV_EMBED_MPI_EXE", "") : a.mpi_exe;
  if (given.empty()) given = (bench::SelfExecutable().parent_path() / "rwkv-embed-mpi").string();
  fs::path exe = bench::FindExecutable(given);
  if (exe.empty()) {
    throw UsageError("bench --mpi: rwkv-embed-mpi not found at " + given +
                     " (build it with MPI: -DRWKV_EMBED_MPI=ON and Debian's libopenmpi-dev; or "
                     "name it with --mpi-exe or RWKV_EMBED_MPI_EXE)");
  }
  return exe;
}

fs::path FindMpirun() {
  const std::string name = EnvOr("MPIRUN", "mpirun");
  fs::path p = bench::FindExecutable(name);
  if (p.empty()) {
    throw UsageError("bench --mpi: mpirun not found as " + name +
                     " (Debian: openmpi-bin; or name it with MPIRUN)");
  }
  return p;
}

int TotalThreads(const BenchArgs& a) {
  if (a.threads.empty()) return omp_get_num_procs();
  const auto t = ParseIntList(a.threads, "--threads");
  if (t.size() != 1 || t[0] > 4096) {
    throw UsageError(
        "--threads: with --mpi, one total thread count (at most 4096), split over "
        "the ranks; got '" +
        a.threads + "'");
  }
  return static_cast<int>(t[0]);
}

// MRPC dev's distinct sentences (bench's mrpc-dev test), one per line, into `file`.
void WriteMrpcDev(const BenchArgs& a, const fs::path& file) {
  PairDataset dev = LoadTask("mrpc", "dev", a.data_dir);
  if (a.pairs > 0 && a.pairs < static_cast<int64_t>(dev.pairs.size())) dev.pairs.resize(a.pairs);
  std::ofstream out(file, std::ios::binary);
  for (const std::string& s : UniqueSentences(dev, nullptr)) {
    if (s.find_first_of("\r\n") != std::string::npos) {
      throw DataError(a.data_dir + ": an MRPC dev sentence spans lines: '" + s + "'");
    }
    out << s << "\n";
  }
  if (!out.flush()) throw IoError("cannot write " + file.string());
}

// The input: --input as given, or MRPC dev written into the scratch folder.
void ChooseInput(const BenchArgs& a, const fs::path& scratch, MpiSetup& s) {
  if (a.input.empty() == a.data_dir.empty()) {
    throw UsageError("bench --mpi needs exactly one of --input FILE and --data-dir DIR");
  }
  if (!a.input.empty()) {
    if (!fs::is_regular_file(a.input)) throw IoError("--input: cannot read " + a.input);
    s.input = fs::absolute(a.input);
    s.input_label = a.input;
    return;
  }
  s.input = scratch / "mrpc-dev.txt";
  WriteMrpcDev(a, s.input);
  s.input_label = "MRPC dev (" + a.data_dir +
                  (a.pairs > 0 ? ", " + std::to_string(a.pairs) + " pairs" : "") + ")";
}

// The options that decide what `embed` computes, the same for every run.
std::vector<std::string> EmbedOptions(const BenchArgs& a) {
  std::vector<std::string> o = {
      "--precision", a.precision, "--batch-tokens", std::to_string(a.batch_tokens),
      "--layers",    a.layers,    "--pooling",      a.pooling};
  auto add = [&o](const char* name, const std::string& value) {
    if (!value.empty()) o.insert(o.end(), {name, value});
  };
  add("--vocab", a.vocab);
  add("--tokenizer", a.tokenizer);
  add("--gemm-path", a.gemm_path);
  if (a.shard_bytes > 0) add("--shard-bytes", std::to_string(a.shard_bytes));
  return o;
}

MpiSetup Prepare(const BenchArgs& a, const fs::path& scratch) {
  MpiSetup s;
  s.ranks = ParseIntList(a.mpi, "--mpi");
  for (int64_t n : s.ranks) {
    if (n > 1024) throw UsageError("--mpi: " + std::to_string(n) + " ranks is more than 1024");
  }
  s.total_threads = TotalThreads(a);
  s.exe = FindMpiExe(a);
  s.mpirun = FindMpirun();
  ChooseInput(a, scratch, s);
  s.embed_options = EmbedOptions(a);
  s.model = a.model;
  return s;
}

int ThreadsPerRank(const MpiSetup& s, int64_t ranks) {
  return std::max<int>(1, s.total_threads / static_cast<int>(ranks));
}

// mpirun --oversubscribe --bind-to none -np N rwkv-embed-mpi embed ... --threads T/N
std::vector<std::string> RunArgv(const MpiSetup& s, int64_t ranks, const fs::path& out) {
  std::vector<std::string> argv = {s.mpirun.string(), "--oversubscribe", "--bind-to", "none"};
  if (::geteuid() == 0) argv.emplace_back("--allow-run-as-root");
  argv.insert(argv.end(), {"-np", std::to_string(ranks), s.exe.string(), "embed", "--model",
                           s.model, "--input", s.input.string(), "--output", out.string(),
                           "--threads", std::to_string(ThreadsPerRank(s, ranks))});
  argv.insert(argv.end(), s.embed_options.begin(), s.embed_options.end());
  return argv;
}

// The embed's exit code as the same error class (its message is already on stderr).
[[noreturn]] void ThrowRunFailure(int64_t ranks, const bench::ChildExit& e) {
  const std::string m = "bench --mpi: mpirun -np " + std::to_string(ranks) +
                        " rwkv-embed-mpi embed " + e.Describe() + " (its error is above)";
  switch (e.signal == 0 ? e.exit_code : -1) {
    case 2:
      throw UsageError(m);
    case 3:
      throw IoError(m);
    case 4:
      throw FormatError(m);
    case 5:
      throw ShapeError(m);
    case 6:
      throw DataError(m);
    case 7:
      throw NumericError(m);
    default:
      throw Error(m);
  }
}

bench::MpiRun ReadAccounting(const fs::path& out) {
  const std::string path = out.string() + ".run.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("bench --mpi: the run wrote no " + path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bench::ParseMpiRun(text, path);
}

// Later runs read the first run's GEMM paths as their cache: autotuning could pick other paths,
// and other paths give other bits. Returns the environment entry that points them there.
std::string HandOnGemmChoices(const bench::MpiRun& first, const fs::path& scratch) {
  const fs::path cache = scratch / "gemm-cache";
  kernels::SaveGemmChoicesAsCache(first.gemm_choices, cache);
  return "RWKV_EMBED_CACHE_DIR=" + cache.string();
}

void CheckSameOutput(const fs::path& first, const fs::path& out, int64_t first_ranks,
                     int64_t ranks) {
  const int64_t at = bench::FirstDifference(first, out);
  if (at < 0) return;
  throw DataError("bench --mpi: the output of " + std::to_string(ranks) +
                  " ranks differs from that of " + std::to_string(first_ranks) + " at byte " +
                  std::to_string(at) +
                  ": the sharded embed changed the embeddings (if rwkv-embed-mpi is another "
                  "build than this rwkv-embed, the GEMM choices could not be handed on: give "
                  "--gemm-path)");
}

// Runs every rank count in turn; every output is compared with the first and then removed.
std::vector<bench::MpiRun> RunAll(const BenchArgs& a, const MpiSetup& s, const fs::path& scratch) {
  std::vector<bench::MpiRun> runs;
  std::vector<std::string> env;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) env.emplace_back("OMP_WAIT_POLICY=passive");
  fs::path first;
  for (size_t i = 0; i < s.ranks.size(); ++i) {
    const int64_t n = s.ranks[i];
    const fs::path out = scratch / ("run" + std::to_string(i) + "-np" + std::to_string(n) + ".npy");
    std::cerr << "bench --mpi: " << n << " rank(s) x " << ThreadsPerRank(s, n) << " thread(s)\n";
    const bench::ChildExit e = bench::RunChild(RunArgv(s, n, out), env);
    if (!e.Succeeded()) ThrowRunFailure(n, e);
    runs.push_back(ReadAccounting(out));
    if (i == 0) {
      first = out;
      if (a.gemm_path.empty() && runs[0].gemm_choices != "[]") {
        env.push_back(HandOnGemmChoices(runs[0], scratch));
      }
    } else {
      CheckSameOutput(first, out, s.ranks[0], n);
      fs::remove(out);
    }
  }
  return runs;
}

}  // namespace

int RunBenchMpi(const BenchArgs& a) {
#ifdef RWKV_EMBED_MPI_BINARY
  throw UsageError("bench --mpi starts mpirun itself: run it from rwkv-embed, not rwkv-embed-mpi");
#endif
  if (a.precision != "f32" && a.precision != "bf16") {
    throw UsageError("--precision must be f32 or bf16");
  }
  CheckBenchOutput(a);
  const ScratchDir scratch;
  const MpiSetup s = Prepare(a, scratch.path());
  bench::MpiScalingReport r;
  r.version = RWKV_EMBED_VERSION;
  r.build_commit = std::string(BuildCommit());
  r.timestamp = UtcNow();
  r.cpu = bench::CpuModelName();
  r.cores = omp_get_num_procs();
  r.total_threads = s.total_threads;
  r.model = a.model;
  r.input = s.input_label;
  r.mpirun = s.mpirun.string();
  r.mpi_exe = s.exe.string();
  r.embed_options = s.embed_options;
  r.runs = RunAll(a, s, scratch.path());
  r.bit_identical = true;  // RunAll stops at the first difference
  const bench::MpiRun& base = bench::CheckRunsAgree(r.runs);
  r.model_estimate = bench::FitClusterModel(base, a.cluster_nodes, a.cluster_sentences);
  const std::string json =
      bench::ToJson(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  WriteBenchOutput(a, bench::ToMarkdown(r), json);
  return 0;
}

}  // namespace rwkv_embed::cli
