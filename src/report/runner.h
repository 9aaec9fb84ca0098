// Runs a whole evaluation — datasets, every method measured in isolation, comparisons — and writes
// its outputs. Shared by `rwkv-embed eval` (one task/split, any methods) and `rwkv-embed
// reproduce` (the study's protocol and more).
//
// Cost isolation (issue 3, item 5): methods run one after another, the outer loop over methods:
// GloVe, SIF (the word vectors are then released), RWKV (released), the random-weights control.
// Before each method the peak RSS is reset (eval::ResetPeakRss), so GloVe is measured without
// the RWKV model resident — unlike the study, whose GloVe memory included the loaded model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "baselines/word_tokenizer.h"
#include "data/pairs.h"
#include "kernels/gemm.h"
#include "model/ablation.h"
#include "model/rwkv_embedder.h"
#include "pooling/pooling.h"
#include "report/report.h"
#include "report/sweep.h"

namespace rwkv_embed::report {

struct TaskPlan {
  std::string task;                 // "mrpc" | "stsb" (or any name, with pair_file)
  std::vector<std::string> splits;  // scored: train | train-N | dev | test
  std::string fit_split = "train";  // thresholds, SIF fitting and subsets; "" = none
  // A generic pair file (ReadPairFile: TSV, CSV or JSONL) scored as the one split `splits[0]`
  // instead of a split of data_dir; `fit_pair_file`, if given, is the fitting split (thresholds,
  // SIF, subsets) instead of fit_split.
  std::filesystem::path pair_file = {}, fit_pair_file = {};
  PairFileOptions pair_options = {};
};

// The methods of a run in groups, numbered in run order: group 0 = the word-vector baselines
// (GloVe, SIF), group 1 + i = model i and its random control. rwkv-embed-mpi spreads the groups
// over its ranks (apps/mpi/sweep.cc); a group is everything one process computes for it, and
// the unit of RunOptions::sweep.
struct MethodGroup {
  int group = 0;
  std::string name;    // "glove+sif", "glove", or the model's method ("rwkv", "rwkv:<name>")
  double seconds = 0;  // wall time of the group in the process that ran it
  std::vector<std::vector<eval::MethodResult>> tasks;  // [task][method], in run order
  std::string vectors_note;                            // group 0: the word vectors' note
  std::string model_note;                              // model groups: "Model used: ..." text
  nlohmann::json files = nlohmann::json::object();     // the group's entries of settings.files
};

struct RunOptions {
  std::filesystem::path data_dir;
  std::vector<TaskPlan> tasks;
  // Methods. An empty path leaves the method out.
  std::filesystem::path glove;  // averaged word vectors ("glove")
  bool sif = false;             // SIF on the same vectors, fitted on the task's fit split
  // RWKV models (RWKV-6 and/or RWKV-7, folders or checkpoint files), evaluated one after
  // another. One model is method "rwkv" (its control "random-control"); several are
  // "rwkv:<name>" and "random-control:<name>", side by side in one report.
  std::vector<std::filesystem::path> models;
  std::filesystem::path vocab;  // World vocabulary; default: beside each model
  TokenizerKind tokenizer = TokenizerKind::kWorld;
  bool random_control = false;  // same architecture and shape, random weights
  // Applied to every RWKV model and its random control (model/ablation.h); recorded in the
  // settings, the method descriptions and, first of all, the notes.
  std::vector<AblationSpec> ablations;
  // Choices (all recorded in the outputs).
  std::string layers = "all";
  bool hf_index = false;
  Pooling pooling = Pooling::kMean;
  Normalization normalization = Normalization::kNone;
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kF32;
  int64_t batch_tokens = 2048;
  baselines::WordTokenizer word_tokenizer = baselines::WordTokenizer::kWhitespace;
  bool lowercase = false;  // the study: plain whitespace tokens, no lower-casing mentioned
  uint64_t seed = 0;       // train-N subset and bootstrap seed; random-control weights seed
  int64_t bootstrap = 1000;
  double level = 0.95;
  std::vector<uint64_t> subset_seeds;
  int64_t subset_size = 1000;
  double undefined_cosine = 0.0;
  bool comparisons = true;
  // Pooling methods beyond the mean (methods/method_spec.h specs, e.g. "state-wkv+pca64",
  // "echo", "mean+abtt", "fusion-learned", "attention"), each run on every model after its plain
  // run as method "<model method>/<spec>", fitted on each task's fit split where it fits
  // anything; `templates`: a user prompt-templates file.
  std::vector<std::string> poolings;
  std::filesystem::path templates;
  // EmbeddingRWKV task heads ("cls", "sts", "retr"): each model that is an EmbeddingRWKV
  // checkpoint is also scored through each head (its embedding: the head applied to the mean of
  // the ln_out states at the EOS positions, docs/design.md#embeddingrwkv) as the one-layer method
  // "<model method>/head-<name>", texts preprocessed by `eos_mode` ("single" | "echo" | "eval").
  std::vector<std::string> heads;
  std::string eos_mode = "eval";
  std::filesystem::path scratch_dir;  // the random-control model is written here, then removed
  std::function<void(const std::string&)> log;  // progress lines (may be empty)
  // Sweeps over several processes: the units are the method groups (unit g = MethodGroup g).
  // The process that gathers every group finishes the run (comparisons, settings, notes) and,
  // with more than one process, records the sweep's accounting in RunInfo::mpi; any other
  // process's RunEvaluation returns an output with `gathered_elsewhere` set and nothing else.
  Sweep sweep;
};

struct RunOutput {
  std::vector<TaskResults> tasks;
  RunInfo run;
  bool gathered_elsewhere = false;  // RunOptions::sweep: this process writes nothing
};

// Loads the data, runs every method and the comparisons. `run` carries the command line and tool
// version; settings, notes and timing are filled in here.
RunOutput RunEvaluation(const RunOptions& options, RunInfo run);

// Writes OUT/<task>.json for every task, OUT/report.md and the plots (OUT/plots/*.svg with their
// .dat/.gp). Returns the files written and, for plots not drawn, why (in `messages`).
std::vector<std::filesystem::path> WriteOutputs(const RunOutput& output,
                                                const std::filesystem::path& out_dir,
                                                std::vector<std::string>* messages);

// "0-4", "0..4", "1,5,9" -> seeds. UsageError on bad input.
std::vector<uint64_t> ParseSeedList(const std::string& spec);

}  // namespace rwkv_embed::report
