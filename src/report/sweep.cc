#include "report/sweep.h"

#include <algorithm>

#include "core/error.h"

namespace rwkv_embed::report {

using nlohmann::json;

namespace {

// A unit without its result: the accounting's entry.
json UnitSummary(const SweepUnit& u) {
  return {{"unit", u.unit},
          {"name", u.name},
          {"rank", u.rank},
          {"seconds", u.seconds},
          {"embed_seconds", u.embed_seconds},
          {"tokens", u.tokens}};
}

}  // namespace

json SweepUnitToJson(const SweepUnit& u) {
  json j = UnitSummary(u);
  j["result"] = u.result;
  return j;
}

SweepUnit SweepUnitFromJson(const json& j) {
  try {
    SweepUnit u;
    u.unit = j.at("unit").get<int>();
    u.name = j.at("name").get<std::string>();
    u.rank = j.at("rank").get<int>();
    u.seconds = j.at("seconds").get<double>();
    u.embed_seconds = j.at("embed_seconds").get<double>();
    u.tokens = j.at("tokens").get<int64_t>();
    u.result = j.at("result");
    return u;
  } catch (const json::exception& e) {
    throw FormatError(std::string("gathered sweep unit: ") + e.what());
  }
}

void CheckGatheredUnits(std::vector<SweepUnit>* units, const std::vector<int>& expected,
                        const std::string& what) {
  std::sort(units->begin(), units->end(),
            [](const SweepUnit& a, const SweepUnit& b) { return a.unit < b.unit; });
  bool ok = units->size() == expected.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = (*units)[i].unit == expected[i];
  if (!ok) {
    throw FormatError("gathered " + what +
                      " do not match the run's: " + std::to_string(units->size()) + " gathered, " +
                      std::to_string(expected.size()) + " expected");
  }
}

json SweepAccounting(const Sweep& sweep, const std::vector<SweepUnit>& units, double wall_seconds) {
  const auto ranks = static_cast<size_t>(std::max(sweep.processes, 1));
  std::vector<int64_t> count(ranks, 0), tokens(ranks, 0);
  std::vector<double> busy(ranks, 0), embed(ranks, 0);
  int64_t total_tokens = 0;
  json unit_list = json::array();
  for (const SweepUnit& u : units) {
    if (u.rank < 0 || static_cast<size_t>(u.rank) >= ranks) {
      throw FormatError("sweep unit " + std::to_string(u.unit) + " ran on rank " +
                        std::to_string(u.rank) + " of " + std::to_string(ranks));
    }
    const auto k = static_cast<size_t>(u.rank);
    ++count[k];
    tokens[k] += u.tokens;
    busy[k] += u.seconds;
    embed[k] += u.embed_seconds;
    total_tokens += u.tokens;
    unit_list.push_back(UnitSummary(u));
  }
  json per_rank = json::array();
  double busy_sum = 0, busy_max = 0;
  for (size_t k = 0; k < ranks; ++k) {
    busy_sum += busy[k];
    busy_max = std::max(busy_max, busy[k]);
    per_rank.push_back({{"rank", k},
                        {"units", count[k]},
                        {"tokens", tokens[k]},
                        {"busy_seconds", busy[k]},
                        {"embed_seconds", embed[k]},
                        {"tokens_per_second", busy[k] > 0 ? tokens[k] / busy[k] : 0.0}});
  }
  const double mean = busy_sum / static_cast<double>(ranks);
  return {{"ranks", ranks},
          {"schedule", sweep.schedule},
          {"tokens", total_tokens},
          {"wall_seconds", wall_seconds},
          {"tokens_per_second", wall_seconds > 0 ? total_tokens / wall_seconds : 0.0},
          {"load_balance_max_over_mean", mean > 0 ? busy_max / mean : 1.0},
          {"per_rank", per_rank},
          {"units", unit_list}};
}

}  // namespace rwkv_embed::report
