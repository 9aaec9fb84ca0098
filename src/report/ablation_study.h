// `rwkv-embed ablate`: the intact model and each ablation (model/ablation.h) scored on one split,
// with Δ Spearman per layer against the intact model and its paired-bootstrap CI
// (eval::CompareLayers on the same pairs and resamples), written as JSON, a Markdown table and
// heat maps.
//
// Every run loads the model once and embeds the split once per ablation (one forward pass gives
// every layer). The grid is each switch × each block, or the user's list of specs, or both.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/evaluator.h"
#include "kernels/gemm.h"
#include "model/ablation.h"
#include "model/rwkv_embedder.h"
#include "pooling/pooling.h"
#include "report/report.h"
#include "report/sweep.h"

namespace rwkv_embed::report {

struct AblationStudyOptions {
  std::filesystem::path model, vocab, data_dir;
  TokenizerKind tokenizer = TokenizerKind::kWorld;
  std::string task = "mrpc", split = "dev";
  std::string layers = "all";  // scored layers (layer_spec.h)
  bool hf_index = false;
  Pooling pooling = Pooling::kMean;
  Normalization normalization = Normalization::kNone;
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kF32;
  int64_t batch_tokens = 2048;
  // Grid: each switch (blocks ignored) × each block of grid_blocks ("all" = every block).
  std::vector<AblationSpec> grid;
  std::string grid_blocks = "all";
  std::vector<AblationSpec> specs;  // the user's own ablations, one run each
  int64_t bootstrap = 1000;
  uint64_t seed = 0;
  double level = 0.95;
  double undefined_cosine = 0.0;
  std::function<void(const std::string&)> log;  // progress lines (may be empty)
  // Several processes (rwkv-embed-mpi): unit 0 = the intact model, unit 1 + i = ablation i of
  // PlanAblations; every process loads the data and the model once. The process that gathers
  // every pass computes the comparisons with the intact model and, with more than one process,
  // records the accounting in RunInfo::mpi; any other returns a study with only
  // `gathered_elsewhere` set.
  Sweep sweep;
};

struct AblationRun {
  std::string name;  // canonical spec, e.g. "skip-tmix:3"
  AblationSpec spec;
  int grid_switch = -1, grid_block = 0;  // index into grid_switches / the 1-based block; -1/0 off
  eval::MethodResult result;
  std::vector<eval::Comparison> vs_intact;  // per scored layer: ablated - intact
};

struct AblationStudy {
  RunInfo run;
  std::string task, split, architecture, model_description;
  bool random_weights = false;
  int64_t num_blocks = 0;
  eval::MethodResult intact;
  std::vector<AblationRun> ablations;
  std::vector<std::string> grid_switches;  // switch names of the grid, in order
  std::vector<int> grid_blocks;            // 1-based
  bool gathered_elsewhere = false;         // AblationStudyOptions::sweep: nothing to write here
};

// The ablations the options describe, in run order: the grid (switch-major), then the user's.
std::vector<AblationRun> PlanAblations(const AblationStudyOptions& options, int64_t num_blocks);

AblationStudy RunAblationStudy(const AblationStudyOptions& options, RunInfo run);

// {tool, tool_version, command_line, started_at, evaluation_seconds, task, split, n_pairs, model,
// settings, notes, intact{layers}, grid, ablations[{name, switch, blocks, grid_block,
// embed_seconds, layers[{layer, hf_layer, spearman, spearman_ci, delta, delta_ci, p_value}]}]},
// and `mpi` (report/sweep.h SweepAccounting) for a run over several processes.
nlohmann::json AblationJson(const AblationStudy& study);

std::string AblationMarkdown(const AblationStudy& study, const std::vector<std::string>& plots);

// Writes the JSON to `json_path` and, when `out_dir` is not empty, ablation.md and the heat maps
// (plots/ablation-layers.*, and plots/ablation-grid.* for a grid) into it, all atomically.
// Returns the files written; plots not drawn say why in `messages`.
std::vector<std::filesystem::path> WriteAblationOutputs(const AblationStudy& study,
                                                        const std::filesystem::path& json_path,
                                                        const std::filesystem::path& out_dir,
                                                        std::vector<std::string>* messages);

}  // namespace rwkv_embed::report
