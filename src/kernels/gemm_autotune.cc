#include "kernels/gemm_autotune.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>

#include "core/build_info.h"
#include "core/error.h"
#include "core/matrix.h"
#include "kernels/cpu.h"
#include "kernels/gemm_internal.h"
#include "kernels/onednn.h"

namespace rwkv_embed::kernels {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kBucketLimit[kGemmMBuckets - 1] = {8, 32, 128, 512};
constexpr int64_t kBucketTimingM[kGemmMBuckets] = {8, 32, 128, 384, 1024};
constexpr int kSingleChoiceTimingBucket = 3;  // one choice for every m: timed at m = 384, between
                                              // short texts and full 2048-token batches
constexpr double kMaxTimingFlops = 3e8;       // per run
constexpr int64_t kMaxTimingWeightBytes = int64_t{8} << 20;
constexpr int kMaxTimingRounds = 3;
constexpr double kMaxSecondsPerEntry = 0.05;  // no third round after this
constexpr double kStableRatio = 1.25;         // winner's second-best run / best run
constexpr double kMinCpuShare = 0.7;  // process CPU time / (wall time x threads) while timing
// Involuntary context switches per second of timing; a quiet machine has next to none, one
// shared with other processes hundreds (a time slice is a few ms).
constexpr double kMaxPreemptionsPerSecond = 50;

std::atomic<bool> g_check_stability{true};

// CPU seconds used by every thread of this process so far.
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Times the scheduler took a core from one of this process's threads for another process.
int64_t InvoluntarySwitches() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_nivcsw;
}

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// (n, k, dtype, precision): what a choice depends on besides m range and threads.
using Shape = std::tuple<int64_t, int64_t, DType, MatMulPrecision>;
using Key = std::tuple<int64_t, int64_t, DType, MatMulPrecision, int, int>;

Key KeyOf(const GemmTuneEntry& e) { return {e.n, e.k, e.dtype, e.precision, e.bucket, e.threads}; }

std::vector<GemmPath> Candidates(DType dtype, MatMulPrecision precision) {
  std::vector<GemmPath> c;
  for (GemmPath p : kAllGemmPaths) {
    if (p != GemmPath::kPortable && GemmPathAvailable(p) && GemmPathAccepts(p, dtype, precision)) {
      c.push_back(p);
    }
  }
  if (c.empty()) c.push_back(GemmPath::kPortable);
  return c;
}

// The fixed preference when nothing was measured: the order the paths usually rank in.
GemmPath DefaultPath(const std::vector<GemmPath>& candidates) {
  for (GemmPath p : {GemmPath::kAmxBf16, GemmPath::kOneDnnBf16, GemmPath::kAvx512Bf16,
                     GemmPath::kAvx512F32, GemmPath::kAvx2F32, GemmPath::kOneDnnF32}) {
    if (std::find(candidates.begin(), candidates.end(), p) != candidates.end()) return p;
  }
  return candidates.front();
}

struct State {
  std::mutex mutex;
  std::map<Key, GemmTuneEntry> table;
  std::set<Shape> seen;
  double seconds = 0;
  bool cache_loaded = false;
  bool frozen = false;                      // InstallGemmChoices: nothing more is measured
  std::vector<GemmTuneEntry> file_entries;  // everything in the file (all thread counts)
  std::string cache_status = "not used yet";
};

State& GetState() {
  static State state;
  return state;
}

// Reads the cache file once per process (or after ResetGemmAutotune). Caller holds the mutex.
void LoadCacheLocked(State& s) {
  if (s.cache_loaded) return;
  s.cache_loaded = true;
  const auto dir = GemmCacheDir();
  if (dir.empty()) {
    s.cache_status = "disabled (RWKV_EMBED_CACHE_DIR=off)";
    return;
  }
  const auto file = GemmCacheFile(dir, CurrentGemmCacheIdentity());
  s.file_entries = LoadGemmCache(file, CurrentGemmCacheIdentity());
  for (GemmTuneEntry e : s.file_entries) {
    e.source = "cache";
    s.table.emplace(KeyOf(e), e);
  }
  s.cache_status =
      "read " + std::to_string(s.file_entries.size()) + " entries from " + file.string();
}

void SaveCacheLocked(State& s, const GemmTuneEntry& added) {
  const auto dir = GemmCacheDir();
  if (dir.empty()) return;
  const auto file = GemmCacheFile(dir, CurrentGemmCacheIdentity());
  std::erase_if(s.file_entries, [&](const GemmTuneEntry& e) { return KeyOf(e) == KeyOf(added); });
  s.file_entries.push_back(added);
  try {
    std::filesystem::create_directories(dir);
    SaveGemmCache(file, CurrentGemmCacheIdentity(), s.file_entries);
    s.cache_status = "written to " + file.string();
  } catch (const std::exception& e) {  // a read-only home never stops an embedding run
    s.cache_status = std::string("could not write ") + file.string() + ": " + e.what();
  }
}

// Synthetic operands for timing (values do not change the speed of any path; no subnormals).
struct TimingData {
  AlignedVector<float> x, y;
  AlignedVector<uint8_t> w;
};

// `remaining`: seconds of the budget left; rounds stop when it is spent (an entry cut short has
// no second run to confirm its winner, so it is "unstable" and not cached).
GemmTuneEntry Measure(const Shape& shape, int bucket, int threads,
                      const std::vector<GemmPath>& candidates, double remaining) {
  const auto [n, k, dtype, precision] = shape;
  GemmTuneEntry e{n, k, dtype, precision, bucket, threads, candidates.front(), {}, "measured"};
  const int64_t m = kBucketTimingM[bucket < 0 ? kSingleChoiceTimingBucket : bucket];
  const int64_t esize = dtype == DType::kBF16 ? 2 : 4;
  int64_t n_sub =
      std::min<int64_t>(kMaxTimingWeightBytes / (k * esize),
                        static_cast<int64_t>(kMaxTimingFlops / (2.0 * static_cast<double>(m * k))));
  n_sub = std::min(n, std::max<int64_t>(64, n_sub / 64 * 64));
  TimingData d;
  d.x.resize(static_cast<size_t>(m * k));
  d.y.resize(static_cast<size_t>(m * n_sub));
  d.w.resize(static_cast<size_t>(n_sub * k * esize));
  for (int64_t i = 0; i < m * k; ++i) d.x[i] = static_cast<float>(i % 17) * 0.0625f - 0.5f;
  for (int64_t i = 0; i < n_sub * k; ++i) {
    const float v = static_cast<float>(i % 13) * 0.03125f - 0.1875f;
    if (dtype == DType::kBF16) {
      const uint16_t b = F32ToBf16(v);
      std::memcpy(d.w.data() + i * 2, &b, 2);
    } else {
      std::memcpy(d.w.data() + i * 4, &v, 4);
    }
  }
  const WeightMatrix w{dtype, d.w.data(), n_sub, k};
  // One warm-up run per candidate (it also creates oneDNN's primitive), then rounds that run every
  // candidate once in turn, keeping each one's best time: a burst of load from other processes
  // then hits all candidates alike instead of one.
  std::vector<double> best(candidates.size(), 1e30), second(candidates.size(), 1e30);
  const auto entry_start = Clock::now();
  for (GemmPath p : candidates) MatMulTWithPath(p, d.x.data(), m, w, d.y.data(), precision);
  const auto start = Clock::now();
  const double cpu_start = ProcessCpuSeconds();
  const int64_t switches_start = InvoluntarySwitches();
  for (int round = 0; round < kMaxTimingRounds && Seconds(entry_start) < remaining; ++round) {
    for (size_t i = 0; i < candidates.size(); ++i) {
      const auto t0 = Clock::now();
      MatMulTWithPath(candidates[i], d.x.data(), m, w, d.y.data(), precision);
      const double t = Seconds(t0);
      second[i] = std::min(second[i], std::max(best[i], t));
      best[i] = std::min(best[i], t);
    }
    if (round >= 1 && Seconds(start) > kMaxSecondsPerEntry) break;
  }
  size_t win = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    e.gflops.emplace_back(candidates[i], 2.0 * static_cast<double>(m * n_sub * k) / best[i] * 1e-9);
    if (best[i] < best[win]) win = i;
  }
  e.path = candidates[win];
  // On a machine busy with other work a run can lose whole scheduler time slices, and then the
  // fastest time says nothing: unless the winner's two best runs agree, fall back to the fixed
  // preference order and do not cache the choice (the next run measures again).
  if (g_check_stability.load() && second[win] > kStableRatio * best[win]) {
    e.path = DefaultPath(candidates);
    e.source = "default (timings unstable)";
  }
  // Steady but slow timings: other processes took our cores for the whole measurement (seen: every
  // path at a tenth of its rate, a wrong winner, cached for good). Our threads then got far less
  // CPU time than wall time, and were preempted: such a choice is used for this run only.
  const double wall = Seconds(start), cpu = ProcessCpuSeconds() - cpu_start;
  const int64_t preempted = InvoluntarySwitches() - switches_start;
  if (g_check_stability.load() && e.source == "measured" &&
      GemmTimingMachineBusy(cpu, wall, omp_get_max_threads(), preempted)) {
    e.path = DefaultPath(candidates);
    char why[96];
    std::snprintf(why, sizeof why, "default (machine busy: %.0f%% CPU share, %lld preemptions)",
                  100.0 * cpu / (wall * omp_get_max_threads()), static_cast<long long>(preempted));
    e.source = why;
  }
  return e;
}

// The entry for (shape, bucket) at `threads`, measured now if new. Caller holds the mutex.
const GemmTuneEntry& ChooseLocked(State& s, const Shape& shape, int bucket, int threads,
                                  const std::vector<GemmPath>& candidates) {
  const auto [n, k, dtype, precision] = shape;
  const Key key{n, k, dtype, precision, bucket, threads};
  auto it = s.table.find(key);
  if (it != s.table.end()) return it->second;
  GemmTuneEntry e{n, k, dtype, precision, bucket, threads, candidates.front(), {}, ""};
  if (candidates.size() == 1) {
    e.source = "only candidate";
  } else if (s.frozen || s.seconds >= kGemmAutotuneBudgetSeconds) {
    e.path = DefaultPath(candidates);
    e.source = s.frozen ? "default (choices installed)" : "default (budget spent)";
  } else {
    const auto t0 = Clock::now();
    e = Measure(shape, bucket, threads, candidates, kGemmAutotuneBudgetSeconds - s.seconds);
    s.seconds += Seconds(t0);
    if (e.source == "measured") SaveCacheLocked(s, e);
  }
  return s.table.emplace(key, e).first->second;
}

uint64_t Fnv1a(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string PrecisionText(MatMulPrecision p) {
  return p == MatMulPrecision::kBF16 ? "bf16" : "f32";
}

nlohmann::json EntryJson(const GemmTuneEntry& e) {
  nlohmann::json g = nlohmann::json::object();
  for (const auto& [p, v] : e.gflops) g[std::string(GemmPathName(p))] = v;
  return {{"n", e.n},
          {"k", e.k},
          {"dtype", std::string(DTypeName(e.dtype))},
          {"precision", PrecisionText(e.precision)},
          {"bucket", e.bucket},
          {"threads", e.threads},
          {"path", std::string(GemmPathName(e.path))},
          {"gflops", g}};
}

// The entry `je` describes; nullopt for a dtype this build does not multiply. Throws on
// malformed JSON (a missing key, a wrong type, an unknown path name).
std::optional<GemmTuneEntry> EntryFromJson(const nlohmann::json& je) {
  GemmTuneEntry e;
  e.n = je.at("n").get<int64_t>();
  e.k = je.at("k").get<int64_t>();
  const auto dtype = je.at("dtype").get<std::string>();
  if (dtype != "F32" && dtype != "BF16") return std::nullopt;
  e.dtype = dtype == "BF16" ? DType::kBF16 : DType::kF32;
  e.precision = je.at("precision").get<std::string>() == "bf16" ? MatMulPrecision::kBF16
                                                                : MatMulPrecision::kF32;
  e.bucket = je.at("bucket").get<int>();
  e.threads = je.at("threads").get<int>();
  e.path = ParseGemmPath(je.at("path").get<std::string>());
  for (const auto& [name, v] : je.at("gflops").items()) {
    e.gflops.emplace_back(ParseGemmPath(name), v.get<double>());
  }
  return e;
}

// A whole-shape choice this process can run.
bool Runnable(const GemmTuneEntry& e) {
  return e.n >= 1 && e.k >= 1 && e.bucket == -1 && e.threads == 0 && e.path != GemmPath::kAuto &&
         GemmPathAvailable(e.path) && GemmPathAccepts(e.path, e.dtype, e.precision);
}

}  // namespace

int GemmMBucket(int64_t m) {
  for (int b = 0; b < kGemmMBuckets - 1; ++b) {
    if (m <= kBucketLimit[b]) return b;
  }
  return kGemmMBuckets - 1;
}

std::string GemmMBucketName(int bucket) {
  if (bucket < 0 || bucket >= kGemmMBuckets) return "any m";
  if (bucket == kGemmMBuckets - 1) return "m>" + std::to_string(kBucketLimit[bucket - 1]);
  return "m<=" + std::to_string(kBucketLimit[bucket]);
}

namespace internal {

GemmPath AutotunedPath(int64_t m, const WeightMatrix& w, MatMulPrecision precision) {
  const std::vector<GemmPath> candidates = Candidates(w.dtype, precision);
  if (candidates.size() == 1 || m == 0 || w.rows == 0 || w.cols == 0) return candidates.front();
  // Inside someone else's parallel region timings mean nothing: take the default.
  if (omp_in_parallel()) return DefaultPath(candidates);
  const Shape shape{w.rows, w.cols, w.dtype, precision};
  State& s = GetState();
  std::lock_guard lock(s.mutex);
  LoadCacheLocked(s);
  s.seen.insert(shape);
  // One path per weight shape and precision, for every m and thread count: paths round and sum
  // differently, so a choice per m range or per thread count would make a text's embedding depend
  // on the batch it was packed into or on --threads. Batch and thread invariance come first.
  return ChooseLocked(s, shape, -1, 0, candidates).path;
}

}  // namespace internal

std::vector<GemmTuneEntry> GemmTuneTable() {
  State& s = GetState();
  std::lock_guard lock(s.mutex);
  std::vector<GemmTuneEntry> out;
  for (const auto& [key, e] : s.table) out.push_back(e);
  return out;
}

void TuneSeenGemmShapes() {
  State& s = GetState();
  std::lock_guard lock(s.mutex);
  LoadCacheLocked(s);
  // Largest weights first: they take most of the time, so they get the budget first.
  std::vector<Shape> shapes(s.seen.begin(), s.seen.end());
  std::stable_sort(shapes.begin(), shapes.end(), [](const Shape& a, const Shape& b) {
    return std::get<0>(a) * std::get<1>(a) > std::get<0>(b) * std::get<1>(b);
  });
  for (const Shape& shape : shapes) {
    ChooseLocked(s, shape, -1, 0, Candidates(std::get<2>(shape), std::get<3>(shape)));
  }
}

bool GemmTimingMachineBusy(double cpu_seconds, double wall_seconds, int threads,
                           int64_t preemptions) {
  return wall_seconds > 0 && threads > 0 &&
         cpu_seconds<kMinCpuShare * wall_seconds * threads&& static_cast<double>(preemptions)>
                 kMaxPreemptionsPerSecond * wall_seconds;
}

void SetGemmTimingStabilityCheck(bool on) { g_check_stability.store(on); }

double GemmAutotuneSeconds() {
  State& s = GetState();
  std::lock_guard lock(s.mutex);
  return s.seconds;
}

void ResetGemmAutotune() {
  State& s = GetState();
  std::lock_guard lock(s.mutex);
  s.table.clear();
  s.seen.clear();
  s.seconds = 0;
  s.cache_loaded = false;
  s.frozen = false;
  s.file_entries.clear();
  s.cache_status = "not used yet";
}

std::string ExportGemmChoices() {
  nlohmann::json j = nlohmann::json::array();
  for (const GemmTuneEntry& e : GemmTuneTable()) {
    if (e.bucket == -1 && e.threads == 0) j.push_back(EntryJson(e));
  }
  return j.dump();
}

void InstallGemmChoices(const std::string& json) {
  std::vector<GemmTuneEntry> entries;
  try {
    for (const auto& je : nlohmann::json::parse(json)) {
      auto e = EntryFromJson(je);
      if (!e) continue;
      if (!Runnable(*e)) {
        throw UsageError("GEMM path " + std::string(GemmPathName(e->path)) + " chosen for the " +
                         std::to_string(e->n) + "x" + std::to_string(e->k) +
                         " weights cannot run on this CPU: give every process the same "
                         "--gemm-path");
      }
      e->source = "installed";
      entries.push_back(std::move(*e));
    }
  } catch (const nlohmann::json::exception& ex) {
    throw FormatError(std::string("GEMM choices: malformed JSON: ") + ex.what());
  }
  State& s = GetState();
  std::lock_guard lock(s.mutex);
  s.cache_loaded = true;  // the installed list wins over any cache file here
  s.cache_status = "not used (choices installed)";
  s.table.clear();
  for (const GemmTuneEntry& e : entries) s.table.emplace(KeyOf(e), e);
  s.frozen = true;
}

std::filesystem::path SaveGemmChoicesAsCache(const std::string& json,
                                             const std::filesystem::path& dir) {
  std::vector<GemmTuneEntry> entries;
  try {
    for (const auto& je : nlohmann::json::parse(json)) {
      if (auto e = EntryFromJson(je)) entries.push_back(std::move(*e));
    }
  } catch (const nlohmann::json::exception& ex) {
    throw FormatError(std::string("GEMM choices: malformed JSON: ") + ex.what());
  }
  const GemmCacheIdentity id = CurrentGemmCacheIdentity();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError("cannot create " + dir.string() + ": " + ec.message());
  auto file = GemmCacheFile(dir, id);
  SaveGemmCache(file, id, entries);
  return file;
}

std::string GemmCacheStatus() {
  State& s = GetState();
  std::lock_guard lock(s.mutex);
  return s.cache_status;
}

GemmCacheIdentity CurrentGemmCacheIdentity() {
  GemmCacheIdentity id;
  id.cpu = CpuIdentity() + " [" + DescribeCpuFeatures(DetectCpuFeatures()) + "]";
  id.build = std::string("rwkv-embed ") + RWKV_EMBED_VERSION + " " + std::string(BuildCommit());
  const std::string dnnl = OneDnnVersion();
  if (!dnnl.empty()) id.build += ", oneDNN " + dnnl;
  for (GemmPath p : kAllGemmPaths) {
    if (!GemmPathAvailable(p)) continue;
    if (!id.paths.empty()) id.paths += ' ';
    id.paths += GemmPathName(p);
  }
  return id;
}

std::filesystem::path GemmCacheDir() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v == nullptr ? "" : v;
  };
  const std::string own = env("RWKV_EMBED_CACHE_DIR");
  if (own == "off") return {};
  if (!own.empty()) return own;
  const std::string xdg = env("XDG_CACHE_HOME");
  if (!xdg.empty()) return std::filesystem::path(xdg) / "rwkv-embed";
  const std::string home = env("HOME");
  if (!home.empty()) return std::filesystem::path(home) / ".cache" / "rwkv-embed";
  return {};
}

std::filesystem::path GemmCacheFile(const std::filesystem::path& dir, const GemmCacheIdentity& id) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(Fnv1a(id.cpu + '\n' + id.build + '\n' + id.paths)));
  return dir / ("gemm-" + std::string(hex) + ".json");
}

void SaveGemmCache(const std::filesystem::path& file, const GemmCacheIdentity& id,
                   const std::vector<GemmTuneEntry>& entries) {
  nlohmann::json j;
  j["identity"] = {{"cpu", id.cpu}, {"build", id.build}, {"paths", id.paths}};
  j["entries"] = nlohmann::json::array();
  for (const GemmTuneEntry& e : entries) j["entries"].push_back(EntryJson(e));
  const auto tmp = file.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("cannot write " + tmp);
    out << j.dump(1) << "\n";
    if (!out) throw IoError("error writing " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw IoError("cannot rename " + tmp + " to " + file.string());
  }
}

std::vector<GemmTuneEntry> LoadGemmCache(const std::filesystem::path& file,
                                         const GemmCacheIdentity& id) {
  std::vector<GemmTuneEntry> out;
  std::ifstream in(file, std::ios::binary);
  if (!in) return out;
  try {
    const auto j = nlohmann::json::parse(in);
    const auto& ji = j.at("identity");
    const GemmCacheIdentity file_id{ji.at("cpu").get<std::string>(),
                                    ji.at("build").get<std::string>(),
                                    ji.at("paths").get<std::string>()};
    if (!(file_id == id)) return out;
    for (const auto& je : j.at("entries")) {
      auto e = EntryFromJson(je);
      // Only whole-shape choices (every m, every thread count): per-range entries written by an
      // earlier build would break batch invariance.
      if (!e || !Runnable(*e)) continue;
      e->source = "cache";
      out.push_back(std::move(*e));
    }
  } catch (const std::exception&) {  // malformed: start cold
    out.clear();
  }
  return out;
}

}  // namespace rwkv_embed::kernels
