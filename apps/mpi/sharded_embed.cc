// `embed` over MPI ranks. Rank 0 plans: it cuts the input into shards at line ends (reading only
// a few bytes around each cut), or takes the plan of an interrupted run from its manifest. Ranks
// count the lines of the shards (each reads a share of the file), so every shard knows its first
// row; rank 0 fixes the GEMM paths for all. Shards are then handed out one at a time by rank 0
// (a coordinator thread beside its own worker), each rank writes its rows straight into
// OUT.npy.shards.partial with MPI-IO, syncs, and reports the shard done; rank 0 records it in the
// manifest (rewritten atomically). When every shard is done, rank 0 renames the file onto OUT.npy,
// writes OUT.npy.run.json (timings, tokens/s, load balance) and removes the manifest.
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../cli/common.h"
#include "../cli/embed_args.h"
#include "core/error.h"
#include "core/timing.h"
#include "data/line_shards.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "kernels/gemm_autotune.h"
#include "mpi_cli.h"

namespace rwkv_embed::mpi {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int kTagRequest = 1;
constexpr int kTagReply = 2;
constexpr int kManifestVersion = 1;

void CheckMpi(int rc, const std::string& what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw IoError(what + ": " + std::string(text, static_cast<size_t>(len)));
}

// Open MPI's blocking calls spin on a core while they wait; ranks that wait for rank 0 (planning,
// measuring GEMM paths, coordinating beside its own shard) or for the last shard must leave the
// cores to the ranks that work, above all when ranks share a machine.
void WaitGently(MPI_Request& request) {
  int done = 0;
  while (MPI_Test(&request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

// Rank 0's string on every rank.
std::string BroadcastString(std::string s, int rank) {
  uint64_t n = s.size();
  MPI_Request request;
  MPI_Ibcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD, &request);
  WaitGently(request);
  if (rank != 0) s.resize(n);
  MPI_Ibcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD, &request);
  WaitGently(request);
  return s;
}

// What the manifest records: the input's identity, the options that decide the output, the
// shards, their rows, which are done, and the GEMM choices every rank used.
struct Plan {
  std::string input;
  int64_t input_bytes = 0, input_mtime = 0;
  json settings;
  std::vector<ByteRange> ranges;
  std::vector<int64_t> rows, first_row;  // empty until counted
  std::string done;                      // '1' per finished shard
  std::string gemm;                      // kernels::ExportGemmChoices() of rank 0
  int64_t layers = 0, dim = 0;

  int64_t Sentences() const { return first_row.empty() ? 0 : first_row.back() + rows.back(); }
  void SetRows(std::vector<int64_t> r) {
    rows = std::move(r);
    first_row.assign(rows.size(), 0);
    for (size_t i = 1; i < rows.size(); ++i) first_row[i] = first_row[i - 1] + rows[i - 1];
  }
  json ToJson() const {
    json j = {{"version", kManifestVersion},
              {"input", input},
              {"input_bytes", input_bytes},
              {"input_mtime", input_mtime},
              {"settings", settings},
              {"rows", rows},
              {"done", done},
              {"gemm", gemm},
              {"layers", layers},
              {"dim", dim}};
    j["ranges"] = json::array();
    for (const auto& r : ranges) j["ranges"].push_back({r.begin, r.end});
    return j;
  }
  static Plan FromJson(const json& j) {
    if (j.at("version").get<int>() != kManifestVersion) throw FormatError("unknown version");
    Plan p;
    p.input = j.at("input").get<std::string>();
    p.input_bytes = j.at("input_bytes").get<int64_t>();
    p.input_mtime = j.at("input_mtime").get<int64_t>();
    p.settings = j.at("settings");
    for (const auto& r : j.at("ranges")) p.ranges.push_back({r.at(0), r.at(1)});
    p.SetRows(j.at("rows").get<std::vector<int64_t>>());
    if (p.rows.empty()) p.first_row.clear();
    p.done = j.at("done").get<std::string>();
    p.gemm = j.at("gemm").get<std::string>();
    p.layers = j.at("layers").get<int64_t>();
    p.dim = j.at("dim").get<int64_t>();
    if (p.done.size() != p.ranges.size() || (!p.rows.empty() && p.rows.size() != p.ranges.size())) {
      throw FormatError("shard lists of different lengths");
    }
    return p;
  }
};

// The options that decide the bytes of the output (not --threads, --batch-tokens or
// --chunk-sentences: embeddings do not depend on them).
json OutputSettings(const cli::EmbedArgs& a) {
  const auto& e = a.embedding_rwkv;
  return {{"model", fs::absolute(a.model).lexically_normal().string()},
          {"vocab", a.vocab},
          {"tokenizer", a.tokenizer},
          {"layers", a.layers},
          {"hf_index", a.hf_index},
          {"pooling", a.pooling},
          {"normalize", a.normalize},
          {"precision", a.precision},
          {"gemm_path", a.gemm_path},
          {"head", e.head},
          {"eos_mode", e.eos_mode},
          {"task", e.task},
          {"role", e.role},
          {"instruction", e.instruction},
          {"prefix", e.prefix},
          {"prefix_state", e.prefix_state}};
}

struct Paths {
  fs::path output, data, manifest, run;
  explicit Paths(const std::string& out)
      : output(out),
        data(out + ".shards.partial"),
        manifest(out + ".shards.json"),
        run(out + ".run.json") {}
};

int64_t MtimeOf(const fs::path& p) {
  return static_cast<int64_t>(fs::last_write_time(p).time_since_epoch().count());
}

// Rank 0: the plan of the interrupted run this one continues, or a fresh one.
Plan MakeOrResumePlan(const cli::EmbedArgs& a, const Paths& paths, int ranks, bool* resumed) {
  std::error_code ec;
  const int64_t bytes = static_cast<int64_t>(fs::file_size(a.input, ec));
  if (ec) throw IoError("cannot open input " + a.input + ": " + ec.message());
  const std::string input = fs::absolute(a.input).lexically_normal().string();
  *resumed = fs::exists(paths.manifest) && fs::exists(paths.data);
  if (*resumed) {
    Plan p;
    try {
      std::ifstream in(paths.manifest, std::ios::binary);
      p = Plan::FromJson(json::parse(in));
    } catch (const std::exception& e) {
      throw FormatError("manifest " + paths.manifest.string() + " of an interrupted run is " +
                        "unreadable (" + e.what() + "): delete it and " + paths.data.string() +
                        " to start over");
    }
    if (p.input != input || p.settings != OutputSettings(a)) {
      throw UsageError("manifest " + paths.manifest.string() + " belongs to an interrupted run " +
                       "with another input or other options (input " + p.input + ", options " +
                       p.settings.dump() + "): rerun that, or delete it and " +
                       paths.data.string() + " to start over");
    }
    if (p.input_bytes == bytes && p.input_mtime == MtimeOf(a.input)) return p;
    // The input was edited (e.g. a bad line fixed): rows done for the old text are worthless.
    std::fprintf(stderr, "embed: %s changed since the interrupted run: starting over\n",
                 a.input.c_str());
    *resumed = false;
  }
  // A manifest without its data file is left from a finished or abandoned run: start over.
  fs::remove(paths.manifest, ec);
  Plan p;
  p.input = input;
  p.input_bytes = bytes;
  p.input_mtime = MtimeOf(a.input);
  p.settings = OutputSettings(a);
  int64_t shard = GetShardOptions().shard_bytes;
  if (shard == 0) shard = DefaultShardBytes(static_cast<double>(bytes), ranks);
  p.ranges = SplitAtLines(a.input, bytes, shard);
  if (p.ranges.empty()) throw DataError("no sentences in " + a.input);
  p.done.assign(p.ranges.size(), '0');
  return p;
}

// Every rank counts the lines of shards rank, rank + size, ...; all learn every count.
void CountRows(Plan& p, const std::string& input, int rank, int size) {
  std::vector<int64_t> rows(p.ranges.size(), 0);
  for (size_t i = static_cast<size_t>(rank); i < rows.size(); i += static_cast<size_t>(size)) {
    rows[i] = CountLines(input, p.ranges[i]);
  }
  MPI_Request request;
  MPI_Iallreduce(MPI_IN_PLACE, rows.data(), static_cast<int>(rows.size()), MPI_INT64_T, MPI_SUM,
                 MPI_COMM_WORLD, &request);
  WaitGently(request);
  p.SetRows(std::move(rows));
}

// Rank 0 measures (or reads from its cache) the GEMM path of every weight shape the model uses,
// then every rank installs that list: the same paths everywhere, so the same bits.
std::string ChooseGemmPaths(cli::EmbedSetup& setup, int rank) {
  std::string choices;
  if (rank == 0) {
    const std::vector<std::string> probe = {"GEMM shapes"};
    const auto unused = setup.owner->Embed(probe, setup.request);  // meets every weight shape
    kernels::TuneSeenGemmShapes();
    choices = kernels::ExportGemmChoices();
  }
  return BroadcastString(choices, rank);
}

struct ShardReport {
  int64_t shard = -1, rows = 0, tokens = 0;
  double seconds = 0, start = 0;  // start: seconds since this rank entered the loop
  int rank = 0;
};

// Rank 0's bookkeeping: pending shards, reports, the manifest.
class Coordinator {
 public:
  Coordinator(Plan& plan, const Paths& paths, bool progress)
      : plan_(plan), paths_(paths), progress_(progress) {
    for (size_t i = 0; i < plan.done.size(); ++i) {
      if (plan.done[i] != '1') pending_.push_back(static_cast<int64_t>(i));
    }
  }
  // Records `finished` (if any) and returns the next shard for `rank`, or -1.
  int64_t Next(const ShardReport& finished) {
    std::lock_guard lock(mutex_);
    if (finished.shard >= 0) {
      plan_.done[static_cast<size_t>(finished.shard)] = '1';
      reports_.push_back(finished);
      WriteFileAtomically(paths_.manifest, plan_.ToJson().dump() + "\n");
      if (progress_) {
        const auto done = std::count(plan_.done.begin(), plan_.done.end(), '1');
        std::fprintf(stderr,
                     "embed: shard %lld done by rank %d (%lld sentences, %.2f s); %lld/%zu\n",
                     static_cast<long long>(finished.shard), finished.rank,
                     static_cast<long long>(finished.rows), finished.seconds,
                     static_cast<long long>(done), plan_.done.size());
      }
    }
    if (pending_.empty()) return -1;
    const int64_t s = pending_.front();
    pending_.pop_front();
    return s;
  }
  // Serves the other ranks until each has been told that no shard is left.
  void Serve(int remote_ranks) {
    while (remote_ranks > 0 && !stop_.load()) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kTagRequest, MPI_COMM_WORLD, &flag, &st);
      if (!flag) {  // blocking receives spin in Open MPI: poll gently beside the worker
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      std::array<double, 5> msg{};
      MPI_Recv(msg.data(), 5, MPI_DOUBLE, st.MPI_SOURCE, kTagRequest, MPI_COMM_WORLD,
               MPI_STATUS_IGNORE);
      ShardReport r{static_cast<int64_t>(msg[0]),
                    static_cast<int64_t>(msg[1]),
                    static_cast<int64_t>(msg[2]),
                    msg[3],
                    msg[4],
                    st.MPI_SOURCE};
      int64_t next = -1;
      try {
        next = Next(r);
      } catch (const std::exception& e) {  // the manifest could not be written: end the job
        std::fprintf(stderr, "rwkv-embed: error (rank 0): %s\n", e.what());
        MPI_Abort(MPI_COMM_WORLD, ExitCodeFor(e));
      }
      MPI_Send(&next, 1, MPI_INT64_T, st.MPI_SOURCE, kTagReply, MPI_COMM_WORLD);
      if (next < 0) --remote_ranks;
    }
  }
  // Makes Serve return (rank 0's own worker failed: the job is about to be aborted).
  void Stop() { stop_.store(true); }
  std::vector<ShardReport> reports() const {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  Plan& plan_;
  const Paths& paths_;
  bool progress_;
  mutable std::mutex mutex_;
  std::atomic<bool> stop_{false};
  std::deque<int64_t> pending_;
  std::vector<ShardReport> reports_;
};

int64_t RemoteNext(const ShardReport& finished) {
  const std::array<double, 5> msg = {
      static_cast<double>(finished.shard), static_cast<double>(finished.rows),
      static_cast<double>(finished.tokens), finished.seconds, finished.start};
  MPI_Send(msg.data(), 5, MPI_DOUBLE, 0, kTagRequest, MPI_COMM_WORLD);
  int64_t next = -1;
  MPI_Request request;
  MPI_Irecv(&next, 1, MPI_INT64_T, 0, kTagReply, MPI_COMM_WORLD, &request);
  WaitGently(request);
  return next;
}

// Test builds: RWKV_EMBED_MPI_TEST_KILL="RANK:SHARDS" kills rank RANK with SIGKILL once rank 0
// has acknowledged SHARDS finished shards from it (a node lost in the middle of a job).
void MaybeKillForTest([[maybe_unused]] int rank, [[maybe_unused]] int finished) {
#ifdef RWKV_EMBED_MPI_TEST_HOOKS
  const char* spec = std::getenv("RWKV_EMBED_MPI_TEST_KILL");
  int r = -1, n = -1;
  if (spec != nullptr && std::sscanf(spec, "%d:%d", &r, &n) == 2 && r == rank && n == finished) {
    std::raise(SIGKILL);
  }
#endif
}

// The embedding of one shard, written at its rows of the [layers, N, C] array.
class ShardWriter {
 public:
  ShardWriter(const Paths& paths, const Plan& plan, int64_t data_start)
      : plan_(plan), data_start_(data_start) {
    CheckMpi(MPI_File_open(MPI_COMM_SELF, paths.data.c_str(), MPI_MODE_WRONLY, MPI_INFO_NULL, &fh_),
             "cannot open " + paths.data.string());
    name_ = paths.data.string();
  }
  ~ShardWriter() {
    if (fh_ != MPI_FILE_NULL) MPI_File_close(&fh_);
  }
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Rows [row, row + values.size() / C) of layer l.
  void Write(int64_t l, int64_t row, std::span<const float> values) {
    const int64_t byte = data_start_ + (l * plan_.Sentences() + row) * plan_.dim * 4;
    MPI_Offset offset = byte;
    const char* p = reinterpret_cast<const char*>(values.data());
    size_t left = values.size_bytes();
    while (left > 0) {
      const int n = static_cast<int>(std::min<size_t>(left, size_t{1} << 30));
      CheckMpi(MPI_File_write_at(fh_, offset, p, n, MPI_BYTE, MPI_STATUS_IGNORE),
               "error writing " + name_);
      offset += n;
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  // The shard's rows reach the file before rank 0 is told that they are there.
  void Sync() { CheckMpi(MPI_File_sync(fh_), "error syncing " + name_); }

 private:
  const Plan& plan_;
  int64_t data_start_;
  MPI_File fh_ = MPI_FILE_NULL;
  std::string name_;
};

ShardReport EmbedShard(int64_t s, const cli::EmbedArgs& a, const Plan& plan, cli::EmbedSetup& setup,
                       ShardWriter& writer) {
  const auto t0 = Clock::now();
  const auto i = static_cast<size_t>(s);
  std::istringstream text(ReadRange(a.input, plan.ranges[i]));
  const int64_t first_row = plan.first_row[i];
  const auto sentences = cli::ReadSentenceLines(text, a.input, first_row + 1);
  if (static_cast<int64_t>(sentences.size()) != plan.rows[i]) {
    throw DataError(
        a.input + " changed while it was being embedded: lines " + std::to_string(first_row + 1) +
        ".. (bytes " + std::to_string(plan.ranges[i].begin) + "..) were counted as " +
        std::to_string(plan.rows[i]) + ", now read as " + std::to_string(sentences.size()));
  }
  ShardReport r{s, plan.rows[i], 0, 0, 0, 0};
  const auto n = static_cast<int64_t>(sentences.size());
  for (int64_t first = 0; first < n; first += a.chunk_sentences) {
    const int64_t count = std::min(a.chunk_sentences, n - first);
    EmbedResult result;
    try {
      result = setup.owner->Embed(std::span(sentences).subspan(first, count), setup.request);
    } catch (const NonFiniteEmbeddingError& e) {
      const int64_t g = first_row + first + e.sentence();
      throw e.Renamed(g, "sentence " + std::to_string(g) + " (line " + std::to_string(g + 1) +
                             " of " + a.input + ")");
    }
    r.tokens += result.tokens;
    for (int64_t l = 0; l < plan.layers; ++l) {
      writer.Write(l, first_row + first, result.embeddings[static_cast<size_t>(l)].Flat());
    }
  }
  writer.Sync();
  r.seconds = SecondsSince(t0);
  return r;
}

// Takes shards until none is left: from the coordinator on rank 0, from rank 0 elsewhere.
void WorkLoop(int rank, const cli::EmbedArgs& a, const Plan& plan, cli::EmbedSetup& setup,
              ShardWriter& writer, Coordinator* coordinator) {
  const auto loop_start = Clock::now();
  ShardReport last;
  int finished = 0;
  while (true) {
    const int64_t s = rank == 0 ? coordinator->Next(last) : RemoteNext(last);
    if (last.shard >= 0) MaybeKillForTest(rank, ++finished);
    if (s < 0) break;
    last = EmbedShard(s, a, plan, setup, writer);
    last.rank = rank;
    last.start = SecondsSince(loop_start) - last.seconds;
  }
}

// Rank 0, once every shard is done: the output in place, the manifest gone; returns the accounting.
json FinishRun(const Paths& paths, const Plan& plan, const std::vector<ShardReport>& reports,
               const std::vector<double>& loop_seconds, const json& phases, int ranks) {
  if (plan.done.find('0') != std::string::npos) {
    throw DataError("internal: shards left undone in " + paths.data.string());
  }
  std::error_code ec;
  fs::rename(paths.data, paths.output, ec);
  if (ec) {
    throw IoError("cannot rename " + paths.data.string() + " to " + paths.output.string() + ": " +
                  ec.message());
  }
  std::vector<json> per_rank(static_cast<size_t>(ranks));
  std::vector<double> busy(static_cast<size_t>(ranks), 0);
  std::vector<int64_t> tokens(static_cast<size_t>(ranks), 0), rows(busy.size(), 0),
      shards(busy.size(), 0);
  json timings = json::array();
  int64_t total_tokens = 0;
  for (const auto& r : reports) {
    const auto k = static_cast<size_t>(r.rank);
    busy[k] += r.seconds;
    tokens[k] += r.tokens;
    rows[k] += r.rows;
    ++shards[k];
    total_tokens += r.tokens;
    const auto& range = plan.ranges[static_cast<size_t>(r.shard)];
    timings.push_back({{"shard", r.shard},
                       {"rank", r.rank},
                       {"bytes", {range.begin, range.end}},
                       {"first_row", plan.first_row[static_cast<size_t>(r.shard)]},
                       {"rows", r.rows},
                       {"tokens", r.tokens},
                       {"start_seconds", r.start},
                       {"seconds", r.seconds}});
  }
  double busy_sum = 0, busy_max = 0;
  for (int k = 0; k < ranks; ++k) {
    const auto i = static_cast<size_t>(k);
    busy_sum += busy[i];
    busy_max = std::max(busy_max, busy[i]);
    per_rank[i] = {{"rank", k},
                   {"shards", shards[i]},
                   {"sentences", rows[i]},
                   {"tokens", tokens[i]},
                   {"busy_seconds", busy[i]},
                   {"loop_seconds", loop_seconds[i]},
                   {"tokens_per_second", busy[i] > 0 ? tokens[i] / busy[i] : 0.0}};
  }
  const double loop = *std::max_element(loop_seconds.begin(), loop_seconds.end());
  const double mean = busy_sum / ranks;
  json run = {{"command", "embed"},
              {"ranks", ranks},
              {"threads_per_rank", omp_get_max_threads()},
              {"input", plan.input},
              {"output", fs::absolute(paths.output).string()},
              {"sentences", plan.Sentences()},
              {"shards", plan.ranges.size()},
              {"shards_this_run", reports.size()},
              {"resumed", reports.size() < plan.ranges.size()},
              {"tokens_this_run", total_tokens},
              {"tokens_per_second", loop > 0 ? total_tokens / loop : 0.0},
              {"load_balance_max_over_mean", mean > 0 ? busy_max / mean : 1.0},
              {"seconds", phases},
              {"per_rank", per_rank},
              {"shard_timings", timings},
              {"gemm_choices", json::parse(plan.gemm.empty() ? "[]" : plan.gemm)}};
  run["seconds"]["embed_loop"] = loop;
  fs::remove(paths.manifest, ec);
  return run;
}

}  // namespace

int RunShardedEmbed(const cli::EmbedArgs& a) {
  const auto t_start = Clock::now();
  int rank = 0, size = 1, thread_level = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Query_thread(&thread_level);
  cli::ApplyThreads(a.threads);
  cli::ApplyGemmPath(a.gemm_path);
  if (!(a.output.size() > 4 && a.output.ends_with(".npy"))) {
    throw UsageError(
        "rwkv-embed-mpi embed: --output must end in .npy (ranks place rows by offset)");
  }
  if (a.input == "-") {
    throw UsageError("rwkv-embed-mpi embed: --input must be a file that every rank can read");
  }
  const Paths paths(a.output);

  // 1. Plan (rank 0), seen by every rank.
  std::string plan_text;
  bool resumed = false;
  if (rank == 0) {
    CheckOutputFile(a.output, "--output");
    plan_text = MakeOrResumePlan(a, paths, size, &resumed).ToJson().dump();
  }
  Plan plan = Plan::FromJson(json::parse(BroadcastString(plan_text, rank)));
  const double plan_seconds = SecondsSince(t_start);

  // 2. The model on every rank; the rows of every shard; one set of GEMM paths.
  auto t0 = Clock::now();
  cli::EmbedSetup setup = cli::LoadEmbedSetup(a);
  const double load_seconds = SecondsSince(t0);
  t0 = Clock::now();
  if (plan.rows.empty()) CountRows(plan, a.input, rank, size);
  const double count_seconds = SecondsSince(t0);
  t0 = Clock::now();
  if (plan.gemm.empty()) plan.gemm = ChooseGemmPaths(setup, rank);
  kernels::InstallGemmChoices(plan.gemm);
  const double gemm_seconds = SecondsSince(t0);
  const auto layers = static_cast<int64_t>(setup.request.layers.size());
  const int64_t dim = setup.owner->Dim();
  const std::vector<int64_t> shape = {layers, plan.Sentences(), dim};
  const std::string preamble = NpyF32Preamble(shape);
  const auto data_bytes = static_cast<int64_t>(preamble.size()) +
                          layers * plan.Sentences() * dim * int64_t{sizeof(float)};

  // 3. Rank 0 creates the data file (or checks the one it resumes) and the manifest.
  std::unique_ptr<Coordinator> coordinator;
  if (rank == 0) {
    if (!resumed) {
      plan.layers = layers;
      plan.dim = dim;
      {
        std::ofstream out(paths.data, std::ios::binary | std::ios::trunc);
        out.write(preamble.data(), static_cast<std::streamsize>(preamble.size()));
        if (!out) throw IoError("cannot write " + paths.data.string());
      }
      fs::resize_file(paths.data, static_cast<uintmax_t>(data_bytes));  // sparse until written
      WriteFileAtomically(paths.manifest, plan.ToJson().dump() + "\n");
    } else if (plan.layers != layers || plan.dim != dim ||
               static_cast<int64_t>(fs::file_size(paths.data)) != data_bytes) {
      throw DataError(paths.data.string() + " does not have the size its manifest " +
                      paths.manifest.string() + " implies: delete both to start over");
    }
    coordinator = std::make_unique<Coordinator>(plan, paths, cli::ProgressWanted(a.progress));
  }
  plan.layers = layers;
  plan.dim = dim;
  MPI_Request request;
  MPI_Ibarrier(MPI_COMM_WORLD, &request);
  WaitGently(request);

  // 4. Shards, taken one at a time from rank 0 (a slow rank takes fewer).
  const auto loop_start = Clock::now();
  {
    ShardWriter writer(paths, plan, static_cast<int64_t>(preamble.size()));
    std::thread server;
    const bool rank0_works = size == 1 || thread_level >= MPI_THREAD_MULTIPLE;
    if (rank == 0 && size > 1) {
      if (rank0_works) {
        server = std::thread([&] { coordinator->Serve(size - 1); });
      } else {
        coordinator->Serve(size - 1);  // MPI without threads: rank 0 only coordinates
      }
    }
    try {
      if (rank != 0 || rank0_works) WorkLoop(rank, a, plan, setup, writer, coordinator.get());
    } catch (...) {  // the error ends the job (RunUnderMpi aborts it) once the server has stopped
      if (server.joinable()) {
        coordinator->Stop();
        server.join();
      }
      throw;
    }
    if (server.joinable()) server.join();
  }
  double loop_seconds = SecondsSince(loop_start);
  std::vector<double> all_loops(static_cast<size_t>(size));
  MPI_Igather(&loop_seconds, 1, MPI_DOUBLE, all_loops.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD,
              &request);
  WaitGently(request);

  // 5. Rank 0 finishes.
  if (rank == 0) {
    const json phases = {{"plan", plan_seconds},
                         {"load_model", load_seconds},
                         {"count_lines", count_seconds},
                         {"gemm_choice", gemm_seconds}};
    json run = FinishRun(paths, plan, coordinator->reports(), all_loops, phases, size);
    run["seconds"]["total"] = SecondsSince(t_start);
    WriteFileAtomically(paths.run, run.dump(1) + "\n");
    std::fprintf(
        stderr,
        "embed: %lld sentences over %d ranks, %zu of %zu shards this run, %lld tokens, "
        "%.0f tokens/s, load balance %.2f -> %s (%.2f s; accounting in %s)\n",
        static_cast<long long>(plan.Sentences()), size, run["shards_this_run"].get<size_t>(),
        plan.ranges.size(), static_cast<long long>(run["tokens_this_run"].get<int64_t>()),
        run["tokens_per_second"].get<double>(), run["load_balance_max_over_mean"].get<double>(),
        a.output.c_str(), SecondsSince(t_start), paths.run.string().c_str());
  }
  return 0;
}

}  // namespace rwkv_embed::mpi
