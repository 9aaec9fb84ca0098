// Options shared by `rwkv-embed eval` and `rwkv-embed reproduce` (one declaration each: flag,
// default, help), turned into a report::RunOptions.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "report/ablation_study.h"
#include "report/runner.h"

namespace rwkv_embed::cli {

struct EvalCliArgs {
  std::string data_dir, glove, vocab,
      layers = "all", pooling = "mean", normalize = "none", precision = "f32",
      word_tokenizer = "whitespace", subset_seeds = "0-4", fit_split = "train", tokenizer = "world",
      gemm_path, poolings, templates, heads, eos_mode = "eval";
  std::vector<std::string> models;  // --model, repeatable
  std::vector<std::string> ablate;  // --ablate SPEC, repeatable
  bool hf_index = false, lowercase = false, sif = false, random_control = false,
       no_comparisons = false;
  int threads = 0;
  int64_t batch_tokens = 2048, bootstrap = 1000, subset_size = 1000;
  uint64_t seed = 0;
  double undefined_cosine = 0.0;
};

// Adds the shared flags to `sub` (data, methods, choices, statistics).
void AddEvalOptions(CLI::App* sub, EvalCliArgs* a);

// Fills everything but the task plan.
report::RunOptions ToRunOptions(const EvalCliArgs& a);

// rwkv-embed-mpi (apps/mpi/sweep.cc) spreads eval's and reproduce's method groups
// (report::MethodGroup) and ablate's passes over the ranks; rwkv-embed leaves this empty.
struct SweepHook {
  std::function<void(report::RunOptions*)> install;                     // sets RunOptions::sweep
  std::function<void(report::AblationStudyOptions*)> install_ablation;  // and ablate's
};
SweepHook& GetSweepHook();

// The run's name for the outputs: the model folder / file name, several joined by "+", else
// the word-vector file's name.
std::string RunName(const EvalCliArgs& a);

// The command line as given, for the outputs.
std::string JoinedCommandLine();

}  // namespace rwkv_embed::cli
