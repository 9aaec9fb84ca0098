// A run's units of work spread over several processes: the method groups of `eval` /
// `reproduce` (report::MethodGroup) and the passes of `ablate` (the intact model, then each
// ablation). The report code says what a unit is and how to finish the run from all of them;
// the transport (which process runs which unit, how results travel) is a Sweep's hooks, set by
// rwkv-embed-mpi (apps/mpi/sweep.cc) and unset in a single process. Nothing here knows MPI.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace rwkv_embed::report {

// One unit as the process that ran it reports it.
struct SweepUnit {
  int unit = 0;              // 0, 1, ... in run order
  std::string name;          // e.g. "glove+sif", "rwkv:tiny", "intact", "skip-tmix:3"
  int rank = 0;              // the process that ran it (set by Sweep::gather)
  double seconds = 0;        // its wall time there: loading, embedding, fitting, metrics
  double embed_seconds = 0;  // of which embedding the scored splits (SplitResult::embed_seconds)
  int64_t tokens = 0;        // tokens (words for word vectors) of the scored splits embedded
  nlohmann::json result;     // what the finishing process needs (method_codec), any JSON
};

struct Sweep {
  // `runs(u)`, asked for u = 0, 1, ... in increasing order (units a run does not have are
  // skipped), says whether this process runs unit u; unset: every unit.
  std::function<bool(int unit)> runs;
  // Once this process's units are done: gets them and returns every unit of the run (any order)
  // to finish the run here, or nothing when another process finishes it. Unset: no sweep.
  std::function<std::optional<std::vector<SweepUnit>>(std::vector<SweepUnit>)> gather;
  int processes = 1;     // how many processes share the units (the accounting's "ranks")
  std::string schedule;  // how units reach them: "dynamic" | "round-robin"

  bool Runs(int unit) const { return !runs || runs(unit); }
};

// CBOR-friendly form of a unit (every double exact once encoded with EncodeCbor).
nlohmann::json SweepUnitToJson(const SweepUnit& u);
// FormatError naming the missing or mistyped field.
SweepUnit SweepUnitFromJson(const nlohmann::json& j);

// Sorts gathered units by number and checks that they are exactly `expected` (in increasing
// order); FormatError naming `what` else.
void CheckGatheredUnits(std::vector<SweepUnit>* units, const std::vector<int>& expected,
                        const std::string& what);

// The run's "mpi" object (docs/mpi.md): ranks, schedule, per_rank [{rank, units,
// tokens, busy_seconds, embed_seconds, tokens_per_second}], units [{unit, name, rank, seconds,
// embed_seconds, tokens}], tokens, wall_seconds (the run's start to the last result gathered),
// tokens_per_second (tokens / wall_seconds) and load_balance_max_over_mean (max / mean of the
// ranks' busy seconds, idle ranks included).
nlohmann::json SweepAccounting(const Sweep& sweep, const std::vector<SweepUnit>& units,
                               double wall_seconds);

}  // namespace rwkv_embed::report
