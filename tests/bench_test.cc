// `rwkv-embed bench`: FLOP counter, statistics, /proc parsing, and an end-to-end run on the tiny
// shared model (fields present and finite; never timings).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "bench/flops.h"
#include "bench/process.h"
#include "bench/stats.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/onednn.h"
#include "model/rwkv6/rwkv6_random.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using testing::RunCli;

// The tiny shared model: C = A = 128, 3 blocks, S = 64 (2 heads), F = int(3.5 * 128) // 32 * 32
// = 448, LoRA ranks E = 32 (time_maa_w1 [128, 160]) and D = 64 (time_decay_w1 [128, 64]).
ModelConfig TinyConfig() { return FindModelPreset("tiny").config; }

TEST(FlopsTest, TinyConfigByHand) {
  const ModelConfig c = TinyConfig();
  ASSERT_EQ(c.hidden_size, 128);
  ASSERT_EQ(c.intermediate_size, 448);
  ASSERT_EQ(c.time_mix_extra_dim, 32);
  ASSERT_EQ(c.time_decay_extra_dim, 64);
  // r, k, v, g, output: 5 * 128 * 128 = 81920; time_maa_w1 128 * 160 = 20480; time_maa_w2
  // 5 * 32 * 128 = 20480; time_decay_w1 128 * 64 = 8192; time_decay_w2 64 * 128 = 8192;
  // ffn key 448 * 128 = 57344, value 128 * 448 = 57344, receptance 128 * 128 = 16384.
  EXPECT_EQ(bench::ProjectionParamsPerBlock(c),
            81920 + 20480 + 20480 + 8192 + 8192 + 57344 + 57344 + 16384);  // 270336
  EXPECT_EQ(bench::ProjectionParams(c), 3 * 270336);
  // 8 FLOPs per state element, 2 heads of 64 x 64.
  EXPECT_EQ(bench::WkvFlopsPerTokenPerBlock(c), 8 * 2 * 64 * 64);
  // Per token: 2 * 811008 + 3 * 65536 = 1818624.
  EXPECT_DOUBLE_EQ(bench::ForwardFlops(c, 1), 1818624.0);
  EXPECT_DOUBLE_EQ(bench::ForwardFlops(c, 37), 37 * 1818624.0);
  EXPECT_DOUBLE_EQ(bench::ForwardFlops(c, 0), 0.0);
}

TEST(FlopsTest, Finch1b6ProjectionsAreTheNonEmbeddingParameters) {
  // RWKV-6 1.6B: 2 x 65536 x 2048 = 268M embedding + head parameters; the projections are the
  // rest bar O(L x C) vectors. By hand: per block 5*2048^2 + 2*2048*160 + 2048*64 + 64*2048
  // + 2*7168*2048 + 2048^2 = 20971520 + 655360 + 262144 + 29360128 + 4194304 = 55443456.
  const ModelConfig c = FindModelPreset("finch-1b6").config;
  EXPECT_EQ(bench::ProjectionParamsPerBlock(c), 55443456);
  EXPECT_EQ(bench::ProjectionParams(c), 24 * 55443456);
}

TEST(FlopsTest, MissingLoraRanksAreAnError) {
  ModelConfig c = TinyConfig();
  c.time_decay_extra_dim = 0;  // as parsed from config.json, before the shapes are known
  EXPECT_THROW(bench::ForwardFlops(c, 1), UsageError);
}

TEST(StatsTest, PercentileMatchesNumpyLinear) {
  // np.percentile(v, p) with NumPy 1.24's default method="linear".
  const std::vector<double> v = {15, 20, 35, 40, 50};
  EXPECT_DOUBLE_EQ(bench::Percentile(v, 40), 29.0);
  EXPECT_DOUBLE_EQ(bench::Percentile(v, 99), 49.6);
  EXPECT_DOUBLE_EQ(bench::Percentile(v, 0), 15.0);
  EXPECT_DOUBLE_EQ(bench::Percentile(v, 100), 50.0);
  const std::vector<double> unsorted = {3, 1, 2, 4};
  EXPECT_DOUBLE_EQ(bench::Percentile(unsorted, 50), 2.5);
  std::vector<double> hundred;
  for (int i = 100; i >= 1; --i) hundred.push_back(i);
  EXPECT_NEAR(bench::Percentile(hundred, 99), 99.01, 1e-12);
  const std::vector<double> one = {7};
  EXPECT_DOUBLE_EQ(bench::Percentile(one, 99), 7.0);
}

TEST(StatsTest, PercentileErrors) {
  const std::vector<double> empty;
  EXPECT_THROW(bench::Percentile(empty, 50), UsageError);
  const std::vector<double> v = {1, 2};
  EXPECT_THROW(bench::Percentile(v, -1), UsageError);
  EXPECT_THROW(bench::Percentile(v, 100.5), UsageError);
  EXPECT_THROW(bench::Percentile(v, std::nan("")), UsageError);
  const std::vector<double> with_nan = {1, std::nan(""), 3};
  EXPECT_THROW(bench::Percentile(with_nan, 50), NumericError);
}

TEST(StatsTest, MeanAndSampleStddev) {
  const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(bench::Mean(v), 5.0);
  // Sum of squared deviations 32, n - 1 = 7.
  EXPECT_DOUBLE_EQ(bench::SampleStddev(v), std::sqrt(32.0 / 7.0));
  const std::vector<double> one = {3};
  EXPECT_DOUBLE_EQ(bench::SampleStddev(one), 0.0);
}

TEST(StatsTest, PowerLawRecoversExactExponents) {
  const std::vector<double> x = {32, 128, 512, 2048};
  for (double k : {1.0, 2.0, 0.5}) {
    std::vector<double> y;
    for (double xi : x) y.push_back(3e-3 * std::pow(xi, k));
    const auto fit = bench::FitPowerLaw(x, y);
    EXPECT_NEAR(fit.exponent, k, 1e-12);
    EXPECT_NEAR(fit.coefficient, 3e-3, 1e-15);
    EXPECT_NEAR(fit.r_squared, 1.0, 1e-12);
  }
}

TEST(StatsTest, PowerLawMatchesNumpyPolyfit) {
  // np.polyfit(np.log(x), np.log(y), 1) -> slope 0.9878068180572417, exp(intercept)
  // 0.015234660156879935; corrcoef^2 0.9982879465670174.
  const std::vector<double> x = {32, 128, 512, 2048};
  const std::vector<double> y = {0.5, 1.7, 6.9, 30.1};
  const auto fit = bench::FitPowerLaw(x, y);
  EXPECT_NEAR(fit.exponent, 0.9878068180572417, 1e-12);
  EXPECT_NEAR(fit.coefficient, 0.015234660156879935, 1e-14);
  EXPECT_NEAR(fit.r_squared, 0.9982879465670174, 1e-12);
}

TEST(StatsTest, PowerLawErrors) {
  const std::vector<double> x2 = {1, 2}, x1 = {1}, y1 = {1};
  const std::vector<double> same_x = {4, 4}, y2 = {1, 2};
  EXPECT_THROW(bench::FitPowerLaw(x2, y1), UsageError);
  EXPECT_THROW(bench::FitPowerLaw(x1, y1), UsageError);
  EXPECT_THROW(bench::FitPowerLaw(same_x, y2), UsageError);
  const std::vector<double> zero = {0, 1}, inf = {1, std::numeric_limits<double>::infinity()};
  EXPECT_THROW(bench::FitPowerLaw(x2, zero), UsageError);
  EXPECT_THROW(bench::FitPowerLaw(inf, y2), UsageError);
  const std::vector<double> nan = {1, std::nan("")};
  EXPECT_THROW(bench::FitPowerLaw(x2, nan), UsageError);
}

TEST(ProcessTest, ParsesProcStatus) {
  const std::string status =
      "Name:\trwkv-embed\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
  const auto m = bench::ParseProcStatus(status);
  EXPECT_EQ(m.rss_bytes, 1024 * 1024);
  EXPECT_EQ(m.peak_rss_bytes, 2048 * 1024);
  EXPECT_THROW(bench::ParseProcStatus("VmRSS:\t 12 kB\n"), FormatError);  // no VmHWM
  EXPECT_THROW(bench::ParseProcStatus("XVmHWM:\t 5 kB\nVmRSS:\t 1 kB\n"), FormatError);
  EXPECT_THROW(bench::ParseProcStatus("VmHWM:\t 5 MB\nVmRSS:\t 1 kB\n"), FormatError);
  EXPECT_THROW(bench::ParseProcStatus("VmHWM:\t x kB\nVmRSS:\t 1 kB\n"), FormatError);
}

TEST(ProcessTest, OwnMemoryIsPlausible) {
  const auto m = bench::ReadMemoryUsage();
  EXPECT_GT(m.rss_bytes, 0);
  EXPECT_GE(m.peak_rss_bytes, m.rss_bytes);
}

void ExpectFinite(const nlohmann::json& j, const std::string& key, const std::string& where) {
  ASSERT_TRUE(j.contains(key)) << where << " lacks '" << key << "'";
  ASSERT_TRUE(j[key].is_number()) << where << "." << key << " = " << j[key].dump();
  EXPECT_TRUE(std::isfinite(j[key].get<double>())) << where << "." << key;
}

TEST(CliBenchTest, TinyModelJsonHasEveryFieldFinite) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/model.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(dev, "data/mrpc/dev.tsv");
  const auto tmp = testing::TempDir();
  const auto out = tmp / "bench.json";
  const auto run = RunCli({"bench",
                           "--model",
                           model.parent_path().string(),
                           "--data-dir",
                           dev.parent_path().parent_path().string(),
                           "--threads",
                           "1",
                           "--lengths",
                           "8,4",
                           "--batch-tokens",
                           "16",
                           "-r",
                           "1",
                           "--pairs",
                           "6",
                           "--latency-pairs",
                           "3",
                           "--gemm-shape",
                           "8,64,32",
                           "-o",
                           "json",
                           "--output",
                           out.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(out);
  const auto j = nlohmann::json::parse(in);

  for (const char* key : {"load_seconds", "first_forward_seconds", "peak_rss_bytes",
                          "peak_rss_over_weight_file_bytes"}) {
    ExpectFinite(j, key, "report");
  }
  EXPECT_EQ(j["model"]["weight_file_bytes"].get<int64_t>(),
            static_cast<int64_t>(std::filesystem::file_size(model)));
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["model"]["projection_params"].get<int64_t>(), 811008);
  EXPECT_DOUBLE_EQ(j["model"]["flops_per_token"].get<double>(), 1818624.0);
  EXPECT_EQ(j["settings"]["precision"], "bf16");

  // The row labels of llama-bench, and the GEMM path choice made before the timed tests.
  EXPECT_EQ(j["model"]["name"], "rwkv6 0.02B BF16");
  EXPECT_EQ(j["model"]["params"].get<int64_t>(), 811008 + 2 * 65536 * 128);
  EXPECT_FALSE(j["build"]["commit"].get<std::string>().empty());
  ExpectFinite(j["autotune"], "seconds", "autotune");
  EXPECT_FALSE(j["autotune"]["choices"].empty());
  for (const auto& c : j["autotune"]["choices"]) {
    EXPECT_NO_THROW(kernels::ParseGemmPath(c["path"].get<std::string>())) << c.dump();
    // One choice for every thread count (0) and m, at both precisions.
    EXPECT_EQ(c["threads"], 0) << c.dump();
  }

  // The outside peak: oneDNN's own matmul on the requested shape, where this build has oneDNN.
  ASSERT_EQ(j["outside_peak"].size(), 1u);
  const auto& outside = j["outside_peak"][0];
  EXPECT_EQ(outside["threads"], 1);
  EXPECT_EQ(outside["n"], 64);
  const bool have_outside = !kernels::OneDnnVersion().empty();
  if (have_outside) {
    EXPECT_GT(outside["gflops"].get<double>(), 0);
    EXPECT_NE(outside["source"].get<std::string>().find("oneDNN"), std::string::npos);
    EXPECT_DOUBLE_EQ(
        outside["gflops"].get<double>(),
        std::max(outside["bf16_gflops"].get<double>(), outside["f32_gflops"].get<double>()));
  }

  // Both precisions of MatMulT's own rate at the one thread count.
  ASSERT_EQ(j["gemm_peak"].size(), 2u);
  for (const auto& p : j["gemm_peak"]) {
    EXPECT_EQ(p["threads"], 1);
    EXPECT_EQ(p["m"], 8);
    EXPECT_EQ(p["n"], 64);
    EXPECT_EQ(p["k"], 32);
    EXPECT_FALSE(p["path"].get<std::string>().empty());
    ExpectFinite(p, "gflops", "gemm_peak");
    EXPECT_GT(p["gflops"].get<double>(), 0);
  }
  EXPECT_NE(j["gemm_peak"][0]["precision"], j["gemm_peak"][1]["precision"]);

  // Lengths are sorted; 16 / 4 = 4 and 16 / 8 = 2 sequences per packed batch.
  ASSERT_EQ(j["length_scaling"].size(), 1u);
  EXPECT_EQ(j["length_scaling"][0]["lengths"], (std::vector<int64_t>{4, 8}));
  ExpectFinite(j["length_scaling"][0], "exponent", "length_scaling");
  ExpectFinite(j["length_scaling"][0], "r_squared", "length_scaling");

  const std::vector<std::string> tests = {"pp4", "pp4x4", "pp8", "pp8x2", "mrpc-dev", "mrpc-pair"};
  const std::vector<int64_t> tokens = {4, 16, 8, 16};
  ASSERT_EQ(j["rows"].size(), tests.size()) << j["rows"].dump();
  for (size_t i = 0; i < tests.size(); ++i) {
    const auto& row = j["rows"][i];
    const std::string where = "rows[" + std::to_string(i) + "] " + tests[i];
    EXPECT_EQ(row["test"], tests[i]);
    EXPECT_EQ(row["n_threads"], 1);
    for (const char* key : {"avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "sentences_per_s",
                            "gflops", "pct_of_outside_peak", "flops"}) {
      ExpectFinite(row, key, where);
    }
    EXPECT_GT(row["avg_ts"].get<double>(), 0) << where;
    if (have_outside) {
      EXPECT_GT(row["pct_of_outside_peak"].get<double>(), 0) << where;
    }
    EXPECT_EQ(row["model"], "rwkv6 0.02B BF16") << where;
    EXPECT_EQ(row["backend"], "CPU") << where;
    EXPECT_EQ(row["cpu_info"], j["system"]["cpu"]) << where;
    EXPECT_EQ(row["build_commit"], j["build"]["commit"]) << where;
    // Every product ran on some path: "name NN%" items.
    EXPECT_NE(row["gemm_paths"].get<std::string>().find('%'), std::string::npos) << where;
    // The FLOPs of a row are the hand-counted per-token FLOPs times its tokens.
    EXPECT_DOUBLE_EQ(row["flops"].get<double>(), 1818624.0 * row["n_tokens"].get<double>())
        << where;
    if (i < tokens.size()) {
      EXPECT_EQ(row["n_tokens"].get<int64_t>(), tokens[i]) << where;
    }
  }
  const auto& dev_row = j["rows"][4];
  EXPECT_EQ(dev_row["n_pairs"], 6);
  EXPECT_GT(dev_row["n_tokens"].get<int64_t>(), 6 * 2 * 5);  // MRPC sentences are > 5 tokens
  ExpectFinite(dev_row, "seconds_per_pair", "mrpc-dev");
  const auto& pair_row = j["rows"][5];
  EXPECT_EQ(pair_row["n_pairs"], 3);
  EXPECT_EQ(pair_row["n_sequences"], 6);
  EXPECT_EQ(pair_row["samples_ns"].size(), 3u);
  for (const char* key : {"p50_ms", "p99_ms", "seconds_per_pair"}) {
    ExpectFinite(pair_row, key, "mrpc-pair");
  }
  EXPECT_LE(pair_row["p50_ms"].get<double>(), pair_row["p99_ms"].get<double>());
}

TEST(CliBenchTest, MarkdownTableHasOneRowPerTest) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto run =
      RunCli({"bench", "--model", model.parent_path().string(), "--threads", "1", "--lengths", "4",
              "--batch-tokens", "8", "-r", "2", "--gemm-shape", "0,1,1", "--precision", "f32"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("| precision | threads | n_batch | test |"), std::string::npos);
  EXPECT_NE(run.out.find("| f32 | 1 | 8 | pp4 | 4 |"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("| f32 | 1 | 8 | pp4x2 | 8 |"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("mrpc"), run.out.find("mrpc-dev, mrpc-pair skipped")) << run.out;
  EXPECT_NE(run.out.find("GEMM peak not measured"), std::string::npos);
  // A single length: no exponent to fit.
  EXPECT_EQ(run.out.find("time ~ length^"), std::string::npos);
  // Two runs: a spread for each row.
  EXPECT_NE(run.out.find(" ± "), std::string::npos) << run.out;
}

TEST(CliBenchTest, OneRepetitionPrintsNoSpread) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto run =
      RunCli({"bench", "--model", model.parent_path().string(), "--threads", "1", "--lengths", "4",
              "--batch-tokens", "8", "-r", "1", "--gemm-shape", "0,1,1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("| pp4 | 4 |"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("±"), std::string::npos) << run.out;
}

TEST(CliBenchTest, ShardedCheckpointWeightBytesAreTheShards) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  const auto tmp = testing::TempDir();
  const auto dir = tmp / "sharded";
  auto run = RunCli({"init-model", "--preset", "tiny", "--shards", "2", "--vocab", vocab.string(),
                     "--out", dir.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // A stray safetensors file in the folder (like the shared model's golden.safetensors) is not
  // part of the checkpoint.
  std::filesystem::copy_file(dir / "model-00001-of-00002.safetensors", dir / "other.safetensors");
  run = RunCli({"bench", "--model", dir.string(), "--threads", "1", "--lengths", "4", "-r", "1",
                "--gemm-shape", "0,1,1", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(
      j["model"]["weight_file_bytes"].get<int64_t>(),
      static_cast<int64_t>(std::filesystem::file_size(dir / "model-00001-of-00002.safetensors") +
                           std::filesystem::file_size(dir / "model-00002-of-00002.safetensors")));
  EXPECT_TRUE(j["gemm_peak"].empty());
}

TEST(CliBenchTest, BadArgumentsAreUsageErrors) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/model.safetensors");
  const std::string dir = model.parent_path().string();
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--lengths", "0"},
                                                {"--lengths", "8,,16"},
                                                {"--lengths", "x"},
                                                {"--threads", "0"},
                                                {"--threads", "1,-2"},
                                                {"--precision", "f16"},
                                                {"-o", "csv"},
                                                {"--gemm-shape", "1,2"},
                                                {"--gemm-shape", "4,0,4"}}) {
    std::vector<std::string> args = {"bench", "--model", dir};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto run = RunCli(args);
    EXPECT_EQ(run.exit_code, 2) << extra[0] << " " << extra[1] << ": " << run.err;
  }
}

TEST(CliBenchTest, MissingModelOrDataIsAnIoError) {
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/model.safetensors");
  const auto tmp = testing::TempDir();
  auto run = RunCli({"bench", "--model", (tmp / "nothing").string(), "--lengths", "4"});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  run = RunCli({"bench", "--model", model.parent_path().string(), "--data-dir", tmp.string(),
                "--lengths", "4"});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("dev.tsv"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace rwkv_embed
