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
#include "core/error.h"
#include "core/matrix.h"
#include "core/memory.h"
#include "core/random.h"
#include "data/pairs.h"
#include "io/checkpoint.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::bench {
namespace {

using Clock = std::chrono::steady_clock;
using kernels::MatMulPrecision;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

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
  if (o.gemm_m < 0 || (o.gemm_m > 0 && (o.gemm_n < 1 || o.gemm_k < 1))) {
    throw UsageError("bench: GEMM shape must be M,N,K >= 1 (M = 0 skips the peak measurement)");
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
  return Since(t0);
}

// Adds max(repetitions, 5) timed runs (after one warm-up) of y = x W^T with a random BF16 W [n, k]
// to `peak` and keeps its best rate. Called before and after the model tests: on a shared machine
// a single burst can land in a busy moment, and a peak is a best case by definition.
void MeasureGemmPeak(const BenchOptions& o, GemmPeak& peak) {
  peak.m = o.gemm_m;
  peak.n = o.gemm_n;
  peak.k = o.gemm_k;
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
    peak.samples_s.push_back(Since(t0));
  }
  if (!std::isfinite(y[0])) throw NumericError("GEMM peak: non-finite product");
  const double best = *std::min_element(peak.samples_s.begin(), peak.samples_s.end());
  peak.gflops = 2.0 * static_cast<double>(peak.m) * static_cast<double>(peak.n) *
                static_cast<double>(peak.k) / best * 1e-9;
}

void MeasureGemmPeaks(const BenchOptions& o, const std::vector<int>& threads,
                      std::vector<GemmPeak>& peaks) {
  if (peaks.empty()) {
    for (int t : threads) {
      for (MatMulPrecision p : {MatMulPrecision::kF32, MatMulPrecision::kBF16}) {
        GemmPeak peak;
        peak.threads = t;
        peak.precision = p;
        peaks.push_back(peak);
      }
    }
  }
  for (GemmPeak& peak : peaks) {
    omp_set_num_threads(peak.threads);
    MeasureGemmPeak(o, peak);
  }
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

  // First round of the GEMM peak, before the weights are mapped (its buffers stay out of the
  // peak RSS of the model runs).
  if (o.gemm_m > 0) MeasureGemmPeaks(o, threads, rep.gemm_peaks);

  RwkvEmbedderOptions eo;
  eo.batch_tokens = o.batch_tokens;
  eo.precision = o.precision;
  auto t0 = Clock::now();
  auto embedder = RwkvEmbedder::Load(o.model_dir, o.vocab, eo);
  rep.load_s = Since(t0);
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
  Log(o, "bench: loaded " + rep.model_description + " in " + Fixed(rep.load_s, 3) + " s");

  PortableRng rng(o.seed);
  {
    omp_set_num_threads(threads.front());
    const TokenBatch warm = RandomBatch(vocab, lengths.front(), 1, rng);
    rep.first_forward_s = TimeForward(model, warm, o.precision);
  }

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
      BenchRow row{"pp" + std::to_string(len), t, 1, len, 0, flops(len), {}};
      for (int r = 0; r < o.repetitions; ++r) {
        row.samples_s.push_back(TimeForward(model, single, o.precision));
      }
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
                      {}};
        for (int r = 0; r < o.repetitions; ++r) {
          prow.samples_s.push_back(TimeForward(model, batch, o.precision));
        }
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
                   {}};
      for (int r = 0; r < o.repetitions; ++r) {
        t0 = Clock::now();
        const EmbedResult res = embedder->Embed(sentences, request);
        row.samples_s.push_back(Since(t0));
        row.tokens = res.tokens;
      }
      row.flops = flops(row.tokens);
      Log(o, "bench: mrpc-dev t=" + std::to_string(t) + ": " +
                 Fixed(Mean(row.samples_s) / static_cast<double>(row.pairs), 4) + " s/pair");
      rep.rows.push_back(std::move(row));

      const int64_t n_lat = std::min<int64_t>(o.latency_pairs, dev.pairs.size());
      if (n_lat > 0) {
        BenchRow lat{"mrpc-pair", t, 2 * n_lat, 0, n_lat, 0, {}};
        for (int64_t p = 0; p < n_lat; ++p) {
          const std::string pair[2] = {dev.pairs[p].sentence1, dev.pairs[p].sentence2};
          t0 = Clock::now();
          const EmbedResult res = embedder->Embed(pair, request);
          lat.samples_s.push_back(Since(t0));
          lat.tokens += res.tokens;
        }
        lat.flops = flops(lat.tokens);
        Log(o, "bench: mrpc-pair t=" + std::to_string(t) + ": p50 " +
                   Fixed(Percentile(lat.samples_s, 50) * 1e3, 1) + " ms");
        rep.rows.push_back(std::move(lat));
      }
    }
  }
  rep.peak_rss_bytes = ReadMemoryUsage().peak_rss_bytes;

  if (o.gemm_m > 0) {
    MeasureGemmPeaks(o, threads, rep.gemm_peaks);  // second round, see MeasureGemmPeak
    for (const GemmPeak& p : rep.gemm_peaks) {
      Log(o, "bench: GEMM peak t=" + std::to_string(p.threads) + " " + PrecisionName(p.precision) +
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
  for (const GemmPeak& p : report.gemm_peaks) {
    if (p.threads == row.threads && p.precision == report.precision && p.gflops > 0) {
      s.pct_of_peak = 100.0 * s.gflops / p.gflops;
    }
  }
  return s;
}

nlohmann::json ToJson(const BenchReport& r) {
  using nlohmann::json;
  json j;
  j["build"] = {{"version", r.version}, {"timestamp", r.timestamp}};
  j["system"] = {{"cpu", r.cpu}, {"cores", r.cores}};
  j["model"] = {{"dir", r.model_dir},
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
    json jr = {{"test", row.test},
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
               {"pct_of_gemm_peak", s.pct_of_peak},
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
  md << "rwkv-embed " << r.version << " bench, " << r.timestamp << ", " << r.cpu << " (" << r.cores
     << " cores)\n\n";
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
  for (const GemmPeak& p : r.gemm_peaks) {
    md << "- GEMM peak (MatMulT " << p.m << "x" << p.n << "x" << p.k << ", BF16 weights, "
       << PrecisionName(p.precision) << " requested, path " << p.path << ", " << p.threads
       << " threads): " << Fixed(p.gflops, 1) << " GFLOP/s\n";
  }
  for (const LengthScaling& s : r.scaling) {
    md << "- time ~ length^" << Fixed(s.exponent, 3) << " (R^2 " << Fixed(s.r_squared, 4) << ", pp"
       << s.lengths.front() << "..pp" << s.lengths.back() << ", " << s.threads << " threads)\n";
  }
  for (const std::string& n : r.notes) md << "- note: " << n << "\n";
  md << "\n| precision | threads | n_batch | test | tokens | t/s | sent/s | s/pair | p50 ms | p99 "
        "ms "
        "| GFLOP/s | % peak |\n";
  md << "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const BenchRow& row : r.rows) {
    const RowStats s = ComputeRowStats(row, r);
    const bool lat = row.test == "mrpc-pair";
    md << "| " << PrecisionName(r.precision) << " | " << row.threads << " | " << r.batch_tokens
       << " | " << row.test << " | " << row.tokens << " | " << Fixed(s.avg_ts, 2)
       << (lat ? "" : " ± " + Fixed(s.stddev_ts, 2)) << " | " << Fixed(s.sentences_per_s, 2)
       << " | " << (row.pairs > 0 ? Fixed(s.seconds_per_pair, 4) : "-") << " | "
       << (lat ? Fixed(s.p50_s * 1e3, 1) : "-") << " | " << (lat ? Fixed(s.p99_s * 1e3, 1) : "-")
       << " | " << Fixed(s.gflops, 1) << " | "
       << (s.pct_of_peak > 0 ? Fixed(s.pct_of_peak, 1) : "-") << " |\n";
  }
  return md.str();
}

}  // namespace rwkv_embed::bench
