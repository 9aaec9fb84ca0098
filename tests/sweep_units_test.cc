// report/sweep.h without MPI: the accounting of a sweep, units through CBOR, the gathered units'
// check, and an ablation study split between two simulated processes (the hooks rwkv-embed-mpi
// sets) finishing exactly as one process does.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/gemm.h"
#include "model/ablation.h"
#include "report/ablation_study.h"
#include "report/method_codec.h"
#include "report/sweep.h"
#include "test_util.h"

namespace rwkv_embed::report {
namespace {

using nlohmann::json;

SweepUnit Unit(int unit, int rank, double seconds, int64_t tokens) {
  SweepUnit u;
  u.unit = unit;
  u.name = "u" + std::to_string(unit);
  u.rank = rank;
  u.seconds = seconds;
  u.embed_seconds = seconds / 2;
  u.tokens = tokens;
  return u;
}

TEST(SweepAccountingTest, PerRankSumsTotalsAndLoadBalanceWithAnIdleRank) {
  Sweep sweep;
  sweep.processes = 3;
  sweep.schedule = "dynamic";
  const json j =
      SweepAccounting(sweep, {Unit(0, 1, 2.0, 100), Unit(1, 0, 1.0, 50), Unit(2, 1, 3.0, 70)}, 4.0);
  EXPECT_EQ(j["ranks"], 3);
  EXPECT_EQ(j["schedule"], "dynamic");
  EXPECT_EQ(j["tokens"], 220);
  EXPECT_DOUBLE_EQ(j["tokens_per_second"].get<double>(), 220 / 4.0);
  // busy 1, 5, 0 (rank 2 idle): mean 2, max 5.
  EXPECT_DOUBLE_EQ(j["load_balance_max_over_mean"].get<double>(), 2.5);
  ASSERT_EQ(j["per_rank"].size(), 3u);
  EXPECT_EQ(j["per_rank"][1]["units"], 2);
  EXPECT_EQ(j["per_rank"][1]["tokens"], 170);
  EXPECT_DOUBLE_EQ(j["per_rank"][1]["busy_seconds"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(j["per_rank"][1]["embed_seconds"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(j["per_rank"][1]["tokens_per_second"].get<double>(), 170 / 5.0);
  EXPECT_EQ(j["per_rank"][2]["units"], 0);
  EXPECT_EQ(j["per_rank"][2]["tokens_per_second"], 0.0);
  ASSERT_EQ(j["units"].size(), 3u);
  EXPECT_EQ(j["units"][0]["name"], "u0");
  EXPECT_EQ(j["units"][0]["rank"], 1);
  // Equal busy ranks: balance 1.
  const json even =
      SweepAccounting(sweep, {Unit(0, 0, 1, 1), Unit(1, 1, 1, 1), Unit(2, 2, 1, 1)}, 1);
  EXPECT_DOUBLE_EQ(even["load_balance_max_over_mean"].get<double>(), 1.0);
  // A unit of a rank outside the job is an error, not a silent drop.
  EXPECT_THROW(SweepAccounting(sweep, {Unit(0, 3, 1, 1)}, 1), FormatError);
}

TEST(SweepUnitTest, ThroughCborEveryFieldExactNanIncluded) {
  SweepUnit u = Unit(7, 2, 0.1 + 0.2, 12345);
  u.result = {{"auc", std::numeric_limits<double>::quiet_NaN()}, {"x", 1.0 / 3}};
  const SweepUnit v = SweepUnitFromJson(DecodeCbor(EncodeCbor(SweepUnitToJson(u))));
  EXPECT_EQ(v.unit, 7);
  EXPECT_EQ(v.name, "u7");
  EXPECT_EQ(v.rank, 2);
  EXPECT_EQ(v.seconds, 0.1 + 0.2);
  EXPECT_EQ(v.embed_seconds, u.embed_seconds);
  EXPECT_EQ(v.tokens, 12345);
  EXPECT_TRUE(std::isnan(v.result["auc"].get<double>()));
  EXPECT_EQ(v.result["x"].get<double>(), 1.0 / 3);
  json broken = SweepUnitToJson(u);
  broken.erase("tokens");
  EXPECT_THROW(SweepUnitFromJson(broken), FormatError);
}

TEST(SweepUnitTest, GatheredUnitsAreSortedAndMustBeExactlyTheRunsOnes) {
  std::vector<SweepUnit> units = {Unit(2, 0, 1, 1), Unit(0, 1, 1, 1), Unit(1, 0, 1, 1)};
  CheckGatheredUnits(&units, {0, 1, 2}, "passes");
  EXPECT_EQ(units[0].unit, 0);
  EXPECT_EQ(units[2].unit, 2);
  std::vector<SweepUnit> twice = {Unit(0, 0, 1, 1), Unit(0, 1, 1, 1)};
  EXPECT_THROW(CheckGatheredUnits(&twice, {0, 1}, "passes"), FormatError);
  std::vector<SweepUnit> missing = {Unit(0, 0, 1, 1)};
  EXPECT_THROW(CheckGatheredUnits(&missing, {0, 1}, "passes"), FormatError);
}

// What may differ between two runs of one study: when, how long, and the sweep's accounting.
json Comparable(json j) {
  if (j.is_object()) {
    for (const char* k : {"started_at", "evaluation_seconds", "embed_seconds", "mpi"}) j.erase(k);
    for (auto& [k, v] : j.items()) v = Comparable(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = Comparable(v);
  }
  return j;
}

// Process "B" runs the odd passes and hands them over; process "A" runs the even ones (the intact
// model included), gathers B's and finishes: the same study as one process, NaN-free or not.
TEST(AblationSweepTest, TwoSimulatedProcessesFinishAsOneProcess) {
  RWKV_EMBED_REQUIRE_SHARED(config, "models/tiny-rwkv7-f32/config.json");
  RWKV_EMBED_REQUIRE_SHARED(dev, "data/mrpc/dev.tsv");
  const std::filesystem::path dir = testing::TempDir();
  std::filesystem::create_directories(dir / "mrpc");
  {
    std::ifstream in(dev);
    std::ofstream out(dir / "mrpc" / "dev.tsv");
    std::string line;
    for (int i = 0; i < 21 && std::getline(in, line); ++i) out << line << "\n";
  }
  // One GEMM path, no autotuning (which would dominate this test's time).
  kernels::ForceGemmPath(kernels::GemmPath::kPortable);
  AblationStudyOptions o;
  o.model = config.parent_path();
  o.data_dir = dir;
  o.grid = ParseAblationGrid("tmix,cmix");
  o.specs = {ParseAblationSpec("zero-bonus:all")};
  o.bootstrap = 30;
  RunInfo info;
  info.model_name = "tiny";
  const AblationStudy one = RunAblationStudy(o, info);
  ASSERT_EQ(one.ablations.size(), 5u);  // 2 switches x 2 blocks + 1
  EXPECT_TRUE(one.run.mpi.is_null());

  std::vector<SweepUnit> from_b;
  AblationStudyOptions b = o;
  b.sweep.runs = [](int u) { return u % 2 == 1; };
  b.sweep.gather = [&](std::vector<SweepUnit> mine) -> std::optional<std::vector<SweepUnit>> {
    for (SweepUnit& u : mine) u.rank = 1;
    from_b = std::move(mine);
    return std::nullopt;
  };
  const AblationStudy b_study = RunAblationStudy(b, info);
  EXPECT_TRUE(b_study.gathered_elsewhere);
  ASSERT_EQ(from_b.size(), 3u);
  AblationStudyOptions a = o;
  a.sweep.processes = 2;
  a.sweep.schedule = "round-robin";
  a.sweep.runs = [](int u) { return u % 2 == 0; };
  a.sweep.gather = [&](std::vector<SweepUnit> mine) -> std::optional<std::vector<SweepUnit>> {
    for (SweepUnit& u : from_b)
      mine.push_back(SweepUnitFromJson(DecodeCbor(EncodeCbor(SweepUnitToJson(u)))));  // as sent
    return mine;
  };
  const AblationStudy two = RunAblationStudy(a, info);
  EXPECT_FALSE(two.gathered_elsewhere);
  EXPECT_EQ(Comparable(AblationJson(one)), Comparable(AblationJson(two)));
  const json& mpi = two.run.mpi;
  ASSERT_FALSE(mpi.is_null());
  EXPECT_EQ(mpi["ranks"], 2);
  ASSERT_EQ(mpi["units"].size(), 6u);
  for (int u = 0; u < 6; ++u) {
    EXPECT_EQ(mpi["units"][u]["unit"], u);
    EXPECT_EQ(mpi["units"][u]["rank"], u % 2);
    EXPECT_EQ(mpi["units"][u]["tokens"], one.intact.splits.front().tokens);
  }
  EXPECT_EQ(mpi["units"][0]["name"], "intact");
  EXPECT_EQ(mpi["units"][5]["name"], "zero-bonus:all");
  EXPECT_EQ(AblationJson(two)["mpi"], mpi);

  // A process that gets a pass twice (or misses one) does not write a wrong study.
  a.sweep.gather = [&](std::vector<SweepUnit> mine) -> std::optional<std::vector<SweepUnit>> {
    mine.push_back(mine.front());
    return mine;
  };
  EXPECT_THROW(RunAblationStudy(a, info), FormatError);
  kernels::ForceGemmPath(kernels::GemmPath::kAuto);
}

}  // namespace
}  // namespace rwkv_embed::report
