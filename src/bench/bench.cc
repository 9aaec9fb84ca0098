#include "bench/bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/flops.h"
#include "bench/process.h"
#include "bench/stats.h"
#include "core/build_info.h"
#include "core/error.h"
#include "core/matrix.h"
#include "core/memory.h"
#include "core/random.h"
#include "core/timing.h"
#include "data/pairs.h"
#include "io/checkpoint.h"
#include "kernels/onednn.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::bench {
namespace {

using Clock = std::chrono::steady_clock;
using kernels::MatMulPrecision;

void Log(const BenchOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

void Validate(const BenchOptions& o) {
  if (o.model_dir.empty()) throw UsageError("bench: no model folder given");
  if (o.lengths.empty()) throw UsageError("bench: no sequence lengths given");
  for (int64_t l : o.lengths) {
    if (l < 1) throw UsageError("bench: sequence length " + std::to_string(l) + " is not >= 1");
  }
  for (int t : o.threads) {
    if (t < 1) throw UsageError("bench: thread count " + std::to_string(t) + " is not >= 1");
  }
  if (o.batch_tokens < 1) throw UsageError("bench: batch tokens must be >= 1");
  if (o.repetitions < 1) throw UsageError("bench: repetitions must be >= 1");
  if (o.pairs < 0 || o.latency_pairs < 0) throw UsageError("bench: pair counts must be >= 0");
  const bool model_shape = o.gemm_n == 0 && o.gemm_k == 0;
  if (o.gemm_m < 0 || (o.gemm_m > 0 && !model_shape && (o.gemm_n < 1 || o.gemm_k < 1))) {
    throw UsageError(
        "bench: GEMM shape must be M,N,K >= 1, or M,0,0 for the model's largest weight shape "
        "(M = 0 skips the peak measurement)");
  }
  if (o.gemm_m > 0) {  // BF16 W[N, K], F32 X[M, K] and Y[M, N]
    const double bytes = 2.0 * static_cast<double>(o.gemm_n) * static_cast<double>(o.gemm_k) +
                         4.0 * static_cast<double>(o.gemm_m) * static_cast<double>(o.gemm_k) +
                         4.0 * static_cast<double>(o.gemm_m) * static_cast<double>(o.gemm_n);
    RequireMemory(static_cast<uint64_t>(std::min(bytes, 1.8e19)),
                  "--gemm-shape " + std::to_string(o.gemm_m) + "," + std::to_string(o.gemm_n) +
                      "," + std::to_string(o.gemm_k));
  }
}

// Checks, before anything is allocated, that the largest forward pass of the run fits in memory:
// one pp<L> sequence of the longest length, or a packed batch of up to batch_tokens tokens. The
// forward pass needs `per_token` bytes of scratch per token (SequenceModel::ScratchBytesPerToken).
void CheckForwardFits(const BenchOptions& o, int64_t per_token) {
  const int64_t longest = *std::max_element(o.lengths.begin(), o.lengths.end());
  RequireMemory(CheckedMul(longest, per_token).value_or(UINT64_MAX),
                "--lengths " + std::to_string(longest) + " (one forward pass of that many tokens)");
  const int64_t shortest = *std::min_element(o.lengths.begin(), o.lengths.end());
  if (o.batch_tokens / shortest >= 2 || !o.data_dir.empty()) {
    RequireMemory(CheckedMul(o.batch_tokens, per_token).value_or(UINT64_MAX),
                  "--batch-tokens " + std::to_string(o.batch_tokens) + " (one packed batch)");
  }
}

// `count` sequences of `length` uniform random token ids from a seeded, portable generator.
TokenBatch RandomBatch(int64_t vocab, int64_t length, int64_t count, PortableRng& rng) {
  TokenBatch batch;
  std::vector<int32_t> seq(length);
  for (int64_t s = 0; s < count; ++s) {
    for (auto& id : seq) id = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(vocab)));
    batch.Add(seq);
  }
  return batch;
}

double TimeForward(const SequenceModel& model, const TokenBatch& batch, MatMulPrecision precision) {
  ForwardOptions fo;  // no taps, no logits: the bare embedding forward
  fo.precision = precision;
  const auto t0 = Clock::now();
  model.Forward(batch, fo);
  return SecondsSince(t0);
}

// Adds max(repetitions, 5) timed runs (after one warm-up) of y = x W^T with a random BF16 W [n, k]
// to `peak` and keeps its best rate. Called before and after the model tests: on a shared machine
// a single burst can land in a busy moment, and a peak is a best case by definition.
void MeasureGemmPeak(const BenchOptions& o, GemmPeak& peak) {
  PortableRng rng(o.seed + 1);
  // Uniform in [-1, 1): 24 random mantissa bits, as random_init does.
  auto uniform = [&rng] { return static_cast<float>(rng.Next() >> 40) * 0x1.0p-23f - 1.0f; };
  AlignedVector<uint16_t> w(static_cast<size_t>(peak.n * peak.k));
  for (auto& v : w) v = F32ToBf16(uniform());
  AlignedVector<float> x(static_cast<size_t>(peak.m * peak.k)),
      y(static_cast<size_t>(peak.m * peak.n));
  for (auto& v : x) v = uniform();
  const kernels::WeightMatrix wm{DType::kBF16, w.data(), peak.n, peak.k};
  peak.path =
      std::string(kernels::GemmPathName(kernels::SelectGemmPath(peak.m, wm, peak.precision)));
  kernels::MatMulT(x.data(), peak.m, wm, y.data(), peak.precision);  // warm-up
  for (int r = 0; r < std::max(o.repetitions, 5); ++r) {
    const auto t0 = Clock::now();
    kernels::MatMulT(x.data(), peak.m, wm, y.data(), peak.precision);
    peak.samples_s.push_back(SecondsSince(t0));
  }
  if (!std::isfinite(y[0])) throw NumericError("GEMM peak: non-finite product");
  const double best = *std::min_element(peak.samples_s.begin(), peak.samples_s.end());
  peak.gflops = 2.0 * static_cast<double>(peak.m) * static_cast<double>(peak.n) *
                static_cast<double>(peak.k) / best * 1e-9;
}

void MeasureGemmPeaks(const BenchOptions& o, const std::vector<int>& threads, int64_t n, int64_t k,
                      std::vector<GemmPeak>& peaks) {
  if (peaks.empty()) {
    for (int t : threads) {
      for (MatMulPrecision p : {MatMulPrecision::kF32, MatMulPrecision::kBF16}) {
        GemmPeak peak;
        peak.threads = t;
        peak.precision = p;
        peak.m = o.gemm_m;
        peak.n = n;
        peak.k = k;
        peaks.push_back(peak);
      }
    }
  }
  for (GemmPeak& peak : peaks) {
    omp_set_num_threads(peak.threads);
    MeasureGemmPeak(o, peak);
  }
}

// oneDNN's own BF16 and FP32 matmul (x already converted, W as stored): the outside peak.
void MeasureOutsidePeaks(const BenchOptions& o, const std::vector<int>& threads, int64_t n,
                         int64_t k, std::vector<OutsidePeak>& peaks) {
  if (peaks.empty()) {
    for (int t : threads) peaks.push_back({t, o.gemm_m, n, k, 0, 0, "", "", "", 0});
  }
  const std::string version = kernels::OneDnnVersion();
  for (OutsidePeak& peak : peaks) {
    omp_set_num_threads(peak.threads);
    for (bool bf16 : {true, false}) {
      const kernels::OneDnnTiming t =
          kernels::TimeOneDnnMatmul(peak.m, peak.n, peak.k, bf16, std::max(o.repetitions, 5));
      if (!t.ran) continue;
      double& best = bf16 ? peak.bf16_gflops : peak.f32_gflops;
      best = std::max(best, t.gflops);
      (bf16 ? peak.bf16_impl : peak.f32_impl) = t.impl;
    }
    const bool bf16_wins = peak.bf16_gflops >= peak.f32_gflops;
    peak.gflops = std::max(peak.bf16_gflops, peak.f32_gflops);
    if (peak.gflops > 0) {
      peak.source = "oneDNN " + version +
                    (bf16_wins ? " bf16 (" + peak.bf16_impl + ")" : " f32 (" + peak.f32_impl + ")");
    }
  }
}

// "onednn-bf16 97%, avx512-f32 3%": the GEMM paths of the FLOPs counted since the last reset.
std::string PathShares() {
  const kernels::GemmFlopCounts c = kernels::GemmFlopCounters();
  double total = 0;
  for (double f : c.flops) total += f;
  std::vector<std::pair<double, std::string>> shares;
  for (size_t i = 0; i < std::size(kernels::kAllGemmPaths); ++i) {
    if (total > 0 && c.flops[i] >= 0.005 * total) {
      shares.emplace_back(c.flops[i],
                          std::string(kernels::GemmPathName(kernels::kAllGemmPaths[i])));
    }
  }
  std::sort(shares.rbegin(), shares.rend());
  std::string text;
  for (const auto& [f, name] : shares) {
    char pct[16];
    std::snprintf(pct, sizeof(pct), " %.0f%%", 100.0 * f / total);
    text += (text.empty() ? "" : ", ") + name + pct;
  }
  return text.empty() ? "-" : text;
}

// llama-bench's model column: "rwkv6 1.60B BF16".
std::string ModelName(std::string_view architecture, int64_t params, DType dtype) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%s %.2fB %s", std::string(architecture).c_str(),
                static_cast<double>(params) * 1e-9, std::string(DTypeName(dtype)).c_str());
  return buf;
}

// Bytes of the checkpoint's files (every shard), found as the model loader finds them.
int64_t CheckpointFileBytes(const std::filesystem::path& dir) {
  int64_t total = 0;
  for (const auto& f : LocateCheckpoint(dir).files) {
    total += static_cast<int64_t>(std::filesystem::file_size(f));
  }
  return total;
}

std::string UtcTimestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

}  // namespace

std::string PrecisionName(MatMulPrecision p) {
  return p == MatMulPrecision::kBF16 ? "bf16" : "f32";
}

BenchReport RunBench(const BenchOptions& o) {
  Validate(o);
  BenchReport rep;
  rep.cpu = CpuModelName();
  rep.cores = omp_get_num_procs();
  rep.version = RWKV_EMBED_VERSION;
  rep.build_commit = std::string(BuildCommit());
  rep.timestamp = UtcTimestamp();
  rep.precision = o.precision;
  rep.batch_tokens = o.batch_tokens;
  rep.repetitions = o.repetitions;
  rep.seed = o.seed;
  std::vector<int> threads = o.threads;
  if (threads.empty()) threads.push_back(rep.cores);
  std::vector<int64_t> lengths = o.lengths;
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());

  // Sentences first: a missing data file fails before the (slow) model load.
  PairDataset dev;
  std::vector<std::string> sentences;
  if (!o.data_dir.empty()) {
    dev = LoadTask("mrpc", "dev", o.data_dir);
    if (o.pairs > 0 && o.pairs < static_cast<int64_t>(dev.pairs.size())) dev.pairs.resize(o.pairs);
    sentences = UniqueSentences(dev, nullptr);
  } else {
    rep.notes.push_back("mrpc-dev, mrpc-pair skipped: no --data-dir");
  }

  RwkvEmbedderOptions eo;
  eo.batch_tokens = o.batch_tokens;
  eo.precision = o.precision;
  auto t0 = Clock::now();
  auto embedder = RwkvEmbedder::Load(o.model_dir, o.vocab, eo);
  rep.load_s = SecondsSince(t0);
  const SequenceModel& model = embedder->model();
  const int64_t vocab = model.vocab_size();
  // Work per token is the same in any packing (see bench/flops.h).
  auto flops = [&model](int64_t tokens) {
    return model.FlopsPerToken() * static_cast<double>(tokens);
  };
  CheckForwardFits(o, model.ScratchBytesPerToken());  // the weights are only mapped so far
  rep.model_dir = o.model_dir.string();
  rep.model_description = model.Describe();
  rep.weight_bytes = static_cast<int64_t>(model.checkpoint_bytes());
  rep.weight_file_bytes = CheckpointFileBytes(o.model_dir);
  rep.projection_params = model.ProjectionParams();
  rep.flops_per_token = model.FlopsPerToken();
  rep.hidden_size = model.hidden_size();
  rep.num_layers = model.num_blocks();
  rep.vocab_size = vocab;
  rep.params = rep.projection_params + 2 * vocab * model.hidden_size();
  rep.model_name = ModelName(model.Architecture(), rep.params, model.weight_dtype());
  Log(o, "bench: loaded " + rep.model_description + " in " + Fixed(rep.load_s, 3) + " s");

  // First round of the GEMM peaks, while the weights are mapped but not yet paged in (the
  // buffers stay below the peak RSS of the model runs). Largest weight: FFN key, F x C.
  const int64_t peak_n = o.gemm_n > 0 ? o.gemm_n : model.intermediate_size();
  const int64_t peak_k = o.gemm_k > 0 ? o.gemm_k : model.hidden_size();
  if (o.gemm_m > 0) {
    MeasureOutsidePeaks(o, threads, peak_n, peak_k, rep.outside_peaks);
    MeasureGemmPeaks(o, threads, peak_n, peak_k, rep.gemm_peaks);
  }

  PortableRng rng(o.seed);
  {
    omp_set_num_threads(threads.front());
    const TokenBatch warm = RandomBatch(vocab, lengths.front(), 1, rng);
    rep.first_forward_s = TimeForward(model, warm, o.precision);
  }
  // Every GEMM path choice the tests will need, made now (measured, or read from the cache) so
  // that no timed run measures paths.
  for (int t : threads) {
    omp_set_num_threads(t);
    kernels::TuneSeenGemmShapes();
  }
  rep.autotune_s = kernels::GemmAutotuneSeconds();
  rep.autotune_cache = kernels::GemmCacheStatus();
  rep.gemm_choices = kernels::GemmTuneTable();
  Log(o, "bench: GEMM paths chosen (" + Fixed(rep.autotune_s, 3) + " s measuring; cache " +
             rep.autotune_cache + ")");

  EmbedRequest request;  // every layer, mean pooling: what the evaluation computes
  request.pooling = Pooling::kMean;
  for (int t : threads) {
    omp_set_num_threads(t);
    LengthScaling scaling;
    scaling.threads = t;
    for (int64_t len : lengths) {
      // Same token ids for every thread count: regenerate from a per-length seed.
      PortableRng len_rng(o.seed * 1000003u + static_cast<uint64_t>(len));
      const int64_t packed = o.batch_tokens / len;
      const TokenBatch single = RandomBatch(vocab, len, 1, len_rng);
      BenchRow row{"pp" + std::to_string(len), t, 1, len, 0, flops(len), {}, ""};
      kernels::ResetGemmFlopCounters();
      for (int r = 0; r < o.repetitions; ++r) {
        row.samples_s.push_back(TimeForward(model, single, o.precision));
      }
      row.paths = PathShares();
      Log(o, "bench: " + row.test + " t=" + std::to_string(t) + ": " +
                 Fixed(len / Mean(row.samples_s), 1) + " tokens/s");
      scaling.lengths.push_back(len);
      scaling.seconds.push_back(Mean(row.samples_s));
      rep.rows.push_back(std::move(row));
      if (packed >= 2) {
        const TokenBatch batch = RandomBatch(vocab, len, packed, len_rng);
        BenchRow prow{"pp" + std::to_string(len) + "x" + std::to_string(packed),
                      t,
                      packed,
                      batch.num_tokens(),
                      0,
                      flops(batch.num_tokens()),
                      {},
                      ""};
        kernels::ResetGemmFlopCounters();
        for (int r = 0; r < o.repetitions; ++r) {
          prow.samples_s.push_back(TimeForward(model, batch, o.precision));
        }
        prow.paths = PathShares();
        Log(o, "bench: " + prow.test + " t=" + std::to_string(t) + ": " +
                   Fixed(static_cast<double>(prow.tokens) / Mean(prow.samples_s), 1) + " tokens/s");
        rep.rows.push_back(std::move(prow));
      }
    }
    if (scaling.lengths.size() >= 2) {
      std::vector<double> x(scaling.lengths.begin(), scaling.lengths.end());
      const PowerLawFit fit = FitPowerLaw(x, scaling.seconds);
      scaling.exponent = fit.exponent;
      scaling.r_squared = fit.r_squared;
      rep.scaling.push_back(std::move(scaling));
    }

    if (!sentences.empty()) {
      BenchRow row{"mrpc-dev",
                   t,
                   static_cast<int64_t>(sentences.size()),
                   0,
                   static_cast<int64_t>(dev.pairs.size()),
                   0,
                   {},
                   ""};
      kernels::ResetGemmFlopCounters();
      for (int r = 0; r < o.repetitions; ++r) {
        t0 = Clock::now();
        const EmbedResult res = embedder->Embed(sentences, request);
        row.samples_s.push_back(SecondsSince(t0));
        row.tokens = res.tokens;
      }
      row.flops = flops(row.tokens);
      row.paths = PathShares();
      Log(o, "bench: mrpc-dev t=" + std::to_string(t) + ": " +
                 Fixed(Mean(row.samples_s) / static_cast<double>(row.pairs), 4) + " s/pair");
      rep.rows.push_back(std::move(row));

      const int64_t n_lat = std::min<int64_t>(o.latency_pairs, dev.pairs.size());
      if (n_lat > 0) {
        BenchRow lat{"mrpc-pair", t, 2 * n_lat, 0, n_lat, 0, {}, ""};
        kernels::ResetGemmFlopCounters();
        for (int64_t p = 0; p < n_lat; ++p) {
          const std::string pair[2] = {dev.pairs[p].sentence1, dev.pairs[p].sentence2};
          t0 = Clock::now();
          const EmbedResult res = embedder->Embed(pair, request);
          lat.samples_s.push_back(SecondsSince(t0));
          lat.tokens += res.tokens;
        }
        lat.flops = flops(lat.tokens);
        lat.paths = PathShares();
        Log(o, "bench: mrpc-pair t=" + std::to_string(t) + ": p50 " +
                   Fixed(Percentile(lat.samples_s, 50) * 1e3, 1) + " ms");
        rep.rows.push_back(std::move(lat));
      }
    }
  }
  rep.peak_rss_bytes = ReadMemoryUsage().peak_rss_bytes;

  if (o.gemm_m > 0) {
    // Second round, see MeasureGemmPeak.
    MeasureOutsidePeaks(o, threads, peak_n, peak_k, rep.outside_peaks);
    MeasureGemmPeaks(o, threads, peak_n, peak_k, rep.gemm_peaks);
    for (const OutsidePeak& p : rep.outside_peaks) {
      if (p.gflops <= 0) rep.notes.push_back("no outside GEMM peak: oneDNN did not run here");
      Log(o, "bench: outside peak t=" + std::to_string(p.threads) + ": " + Fixed(p.gflops, 1) +
                 " GFLOP/s, " + p.source);
    }
    for (const GemmPeak& p : rep.gemm_peaks) {
      Log(o, "bench: MatMulT t=" + std::to_string(p.threads) + " " + PrecisionName(p.precision) +
                 ": " + Fixed(p.gflops, 1) + " GFLOP/s");
    }
  } else {
    rep.notes.push_back("GEMM peak not measured (--gemm-shape 0,...)");
  }
  return rep;
}

RowStats ComputeRowStats(const BenchRow& row, const BenchReport& report) {
  RowStats s;
  const bool per_pair = row.test == "mrpc-pair";
  if (per_pair) {
    // Samples are per pair; a "run" is the whole set of pairs.
    double total = 0;
    for (double v : row.samples_s) total += v;
    s.avg_s = total;
    s.stddev_s = 0;
    s.avg_ts = static_cast<double>(row.tokens) / total;
    s.p50_s = Percentile(row.samples_s, 50);
    s.p99_s = Percentile(row.samples_s, 99);
    s.seconds_per_pair = total / static_cast<double>(row.pairs);
  } else {
    s.avg_s = Mean(row.samples_s);
    s.stddev_s = SampleStddev(row.samples_s);
    std::vector<double> ts;
    for (double v : row.samples_s) ts.push_back(static_cast<double>(row.tokens) / v);
    s.avg_ts = Mean(ts);
    s.stddev_ts = SampleStddev(ts);
    if (row.pairs > 0) s.seconds_per_pair = s.avg_s / static_cast<double>(row.pairs);
  }
  s.sentences_per_s = static_cast<double>(row.sequences) / s.avg_s;
  s.gflops = row.flops / s.avg_s * 1e-9;
  for (const OutsidePeak& p : report.outside_peaks) {
    if (p.threads == row.threads && p.gflops > 0) s.pct_of_peak = 100.0 * s.gflops / p.gflops;
  }
  return s;
}

nlohmann::json ToJson(const BenchReport& r) {
  using nlohmann::json;
  json j;
  j["build"] = {{"version", r.version}, {"commit", r.build_commit}, {"timestamp", r.timestamp}};
  j["system"] = {{"cpu", r.cpu}, {"cores", r.cores}};
  j["model"] = {{"dir", r.model_dir},
                {"name", r.model_name},
                {"params", r.params},
                {"description", r.model_description},
                {"weight_bytes", r.weight_bytes},
                {"weight_file_bytes", r.weight_file_bytes},
                {"projection_params", r.projection_params},
                {"flops_per_token", r.flops_per_token},
                {"hidden_size", r.hidden_size},
                {"num_layers", r.num_layers},
                {"vocab_size", r.vocab_size}};
  j["settings"] = {{"precision", PrecisionName(r.precision)},
                   {"batch_tokens", r.batch_tokens},
                   {"repetitions", r.repetitions},
                   {"seed", r.seed}};
  j["load_seconds"] = r.load_s;
  j["first_forward_seconds"] = r.first_forward_s;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["peak_rss_over_weight_file_bytes"] =
      r.weight_file_bytes > 0 ? static_cast<double>(r.peak_rss_bytes) / r.weight_file_bytes : 0.0;
  j["autotune"] = {{"seconds", r.autotune_s},
                   {"budget_seconds", kernels::kGemmAutotuneBudgetSeconds},
                   {"cache", r.autotune_cache},
                   {"choices", json::array()}};
  for (const kernels::GemmTuneEntry& e : r.gemm_choices) {
    json g = json::object();
    for (const auto& [p, v] : e.gflops) g[std::string(kernels::GemmPathName(p))] = v;
    j["autotune"]["choices"].push_back({{"n", e.n},
                                        {"k", e.k},
                                        {"weight_dtype", std::string(DTypeName(e.dtype))},
                                        {"precision", PrecisionName(e.precision)},
                                        {"m_range", kernels::GemmMBucketName(e.bucket)},
                                        {"threads", e.threads},
                                        {"path", std::string(kernels::GemmPathName(e.path))},
                                        {"source", e.source},
                                        {"gflops", g}});
  }
  j["outside_peak"] = json::array();
  for (const OutsidePeak& p : r.outside_peaks) {
    j["outside_peak"].push_back({{"threads", p.threads},
                                 {"m", p.m},
                                 {"n", p.n},
                                 {"k", p.k},
                                 {"bf16_gflops", p.bf16_gflops},
                                 {"bf16_impl", p.bf16_impl},
                                 {"f32_gflops", p.f32_gflops},
                                 {"f32_impl", p.f32_impl},
                                 {"source", p.source},
                                 {"gflops", p.gflops}});
  }
  j["gemm_peak"] = json::array();
  for (const GemmPeak& p : r.gemm_peaks) {
    j["gemm_peak"].push_back({{"threads", p.threads},
                              {"precision", PrecisionName(p.precision)},
                              {"m", p.m},
                              {"n", p.n},
                              {"k", p.k},
                              {"weight_dtype", "bf16"},
                              {"path", p.path},
                              {"samples_s", p.samples_s},
                              {"gflops", p.gflops}});
  }
  j["length_scaling"] = json::array();
  for (const LengthScaling& s : r.scaling) {
    j["length_scaling"].push_back({{"threads", s.threads},
                                   {"lengths", s.lengths},
                                   {"seconds", s.seconds},
                                   {"exponent", s.exponent},
                                   {"r_squared", s.r_squared}});
  }
  j["rows"] = json::array();
  for (const BenchRow& row : r.rows) {
    const RowStats s = ComputeRowStats(row, r);
    std::vector<double> samples_ns, samples_ts;
    for (double v : row.samples_s) {
      samples_ns.push_back(v * 1e9);
      samples_ts.push_back(static_cast<double>(row.tokens) / v);
    }
    json jr = {{"model", r.model_name},
               {"model_size", r.weight_bytes},
               {"model_n_params", r.params},
               {"backend", "CPU"},
               {"gemm_paths", row.paths},
               {"cpu_info", r.cpu},
               {"build_commit", r.build_commit},
               {"test", row.test},
               {"n_threads", row.threads},
               {"precision", PrecisionName(r.precision)},
               {"n_batch", r.batch_tokens},
               {"n_sequences", row.sequences},
               {"n_tokens", row.tokens},
               {"n_pairs", row.pairs},
               {"flops", row.flops},
               {"avg_ns", s.avg_s * 1e9},
               {"stddev_ns", s.stddev_s * 1e9},
               {"avg_ts", s.avg_ts},
               {"stddev_ts", s.stddev_ts},
               {"sentences_per_s", s.sentences_per_s},
               {"gflops", s.gflops},
               {"pct_of_outside_peak", s.pct_of_peak},
               {"samples_ns", samples_ns}};
    if (row.test != "mrpc-pair") jr["samples_ts"] = samples_ts;
    if (row.pairs > 0) jr["seconds_per_pair"] = s.seconds_per_pair;
    if (row.test == "mrpc-pair") {
      jr["p50_ms"] = s.p50_s * 1e3;
      jr["p99_ms"] = s.p99_s * 1e3;
    }
    j["rows"].push_back(std::move(jr));
  }
  j["notes"] = r.notes;
  return j;
}

std::string ToMarkdown(const BenchReport& r) {
  std::ostringstream md;
  const double gib = 1024.0 * 1024.0 * 1024.0;
  md << "rwkv-embed " << r.version << " (build " << r.build_commit << ") bench, " << r.timestamp
     << ", " << r.cpu << " (" << r.cores << " cores)\n\n";
  md << "model: " << r.model_description << "\n\n";
  md << "- weight files " << Fixed(r.weight_file_bytes / gib, 3) << " GiB; peak RSS "
     << Fixed(r.peak_rss_bytes / gib, 3) << " GiB ("
     << Fixed(r.weight_file_bytes > 0 ? static_cast<double>(r.peak_rss_bytes) / r.weight_file_bytes
                                      : 0,
              3)
     << "x weight files)\n";
  md << "- load " << Fixed(r.load_s, 3) << " s; first forward (warm-up, page faults) "
     << Fixed(r.first_forward_s, 3) << " s\n";
  md << "- " << Fixed(r.flops_per_token * 1e-9, 3) << " GFLOP/token (2 x " << r.projection_params
     << " projection weights + WKV)\n";
  md << "- GEMM paths chosen for " << r.gemm_choices.size() << " (shape, precision, m range) in "
     << Fixed(r.autotune_s, 3) << " s of measuring (budget "
     << Fixed(kernels::kGemmAutotuneBudgetSeconds, 1) << " s); cache " << r.autotune_cache << "\n";
  for (const OutsidePeak& p : r.outside_peaks) {
    md << "- outside peak (" << p.m << "x" << p.n << "x" << p.k << ", " << p.threads
       << " threads): " << Fixed(p.gflops, 1) << " GFLOP/s, " << p.source << "; oneDNN bf16 "
       << Fixed(p.bf16_gflops, 1) << ", f32 " << Fixed(p.f32_gflops, 1) << " GFLOP/s\n";
  }
  for (const GemmPeak& p : r.gemm_peaks) {
    md << "- rwkv-embed MatMulT (" << p.m << "x" << p.n << "x" << p.k << ", BF16 weights, "
       << PrecisionName(p.precision) << " requested, path " << p.path << ", " << p.threads
       << " threads): " << Fixed(p.gflops, 1) << " GFLOP/s\n";
  }
  for (const LengthScaling& s : r.scaling) {
    md << "- time ~ length^" << Fixed(s.exponent, 3) << " (R^2 " << Fixed(s.r_squared, 4) << ", pp"
       << s.lengths.front() << "..pp" << s.lengths.back() << ", " << s.threads << " threads)\n";
  }
  for (const std::string& n : r.notes) md << "- note: " << n << "\n";
  md << "\n| model | size | params | backend | GEMM paths | precision | threads | n_batch | test | "
        "tokens | t/s | sent/s | s/pair | p50 ms | p99 ms | GFLOP/s | % peak |\n";
  md << "| --- | ---: | ---: | --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: | ---: |\n";
  for (const BenchRow& row : r.rows) {
    const RowStats s = ComputeRowStats(row, r);
    const bool lat = row.test == "mrpc-pair";
    // A spread needs two runs: with -r 1 there is none to print.
    const bool spread = !lat && row.samples_s.size() >= 2;
    md << "| " << r.model_name << " | " << Fixed(r.weight_bytes / gib, 2) << " GiB | "
       << Fixed(static_cast<double>(r.params) * 1e-9, 2) << " B | CPU | " << row.paths << " | "
       << PrecisionName(r.precision) << " | " << row.threads << " | " << r.batch_tokens << " | "
       << row.test << " | " << row.tokens << " | " << Fixed(s.avg_ts, 2)
       << (spread ? " ± " + Fixed(s.stddev_ts, 2) : "") << " | " << Fixed(s.sentences_per_s, 2)
       << " | " << (row.pairs > 0 ? Fixed(s.seconds_per_pair, 4) : "-") << " | "
       << (lat ? Fixed(s.p50_s * 1e3, 1) : "-") << " | " << (lat ? Fixed(s.p99_s * 1e3, 1) : "-")
       << " | " << Fixed(s.gflops, 1) << " | "
       << (s.pct_of_peak > 0 ? Fixed(s.pct_of_peak, 1) : "-") << " |\n";
  }
  return md.str();
}

}  // namespace rwkv_embed::bench
