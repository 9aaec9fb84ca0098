// rwkv-embed analyze: the study's open questions about layers (issue 9) from one forward pass over
// a split's distinct sentences: matrix entropy (prompt and dataset), curvature, anisotropy and
// effective rank per layer tap, and the singular-value spectra of the projection weights, into
// OUT.json and (with --out) a Markdown report and plots.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "eval_options.h"
#include "io/atomic_file.h"
#include "report/layer_analysis.h"
#include "report/report.h"

namespace rwkv_embed::cli {
namespace {

struct AnalyzeArgs {
  EvalCliArgs common;  // the subset analyze binds, parsed by ToRunOptions like eval's
  std::string model, task, split, output, out;
  double alpha = 1.0;
  int64_t max_text_tokens = 4096;
  bool no_weights = false;
};

int RunAnalyze(const AnalyzeArgs& a) {
  if (a.output.size() < 6 || !a.output.ends_with(".json")) {
    throw UsageError("--output must name a .json file, got '" + a.output + "'");
  }
  if (!(a.alpha > 0.0) || !std::isfinite(a.alpha)) {
    throw UsageError("--alpha must be a finite number > 0 (1 = Shannon), got " +
                     std::to_string(a.alpha));
  }
  // Inputs and outputs are checked before the model is loaded: a typo must not cost a run.
  CheckOutputFile(a.output, "--output");
  if (!a.out.empty()) CheckOutputFolder(a.out, "--out");
  if (!std::filesystem::is_directory(a.common.data_dir)) {
    throw IoError("--data-dir " + a.common.data_dir + " is not a folder");
  }
  if (!std::filesystem::exists(a.model)) throw IoError("--model " + a.model + " does not exist");
  EvalCliArgs c = a.common;
  c.models = {a.model};
  const report::RunOptions o = ToRunOptions(c);  // tokenizer, precision, threads, GEMM path

  report::LayerAnalysisPlan plan;
  plan.model = a.model;
  plan.vocab = o.vocab;
  plan.data_dir = o.data_dir;
  plan.tokenizer = o.tokenizer;
  plan.embedder.batch_tokens = o.batch_tokens;
  plan.embedder.precision = o.precision;
  plan.task = a.task;
  plan.split = a.split;
  plan.layers = o.layers;
  plan.hf_index = o.hf_index;
  plan.seed = o.seed;
  plan.options.alpha = a.alpha;
  plan.options.max_text_tokens = a.max_text_tokens;
  plan.options.weights = !a.no_weights;
  const report::LayerAnalysis result = report::RunLayerAnalysis(plan);

  report::RunInfo info;
  info.tool_version = RWKV_EMBED_VERSION;
  info.command_line = JoinedCommandLine();
  info.model_name = result.model;
  info.settings = {{"layers", o.layers},       {"layers_are_hf_indices", o.hf_index},
                   {"precision", c.precision}, {"batch_tokens", o.batch_tokens},
                   {"seed", o.seed},           {"weights", !a.no_weights}};
  if (result.random_weights || a.model.find("tiny") != std::string::npos) {
    info.notes.push_back(
        "With random weights these numbers say nothing about RWKV: they exercise the analysis.");
  }
  std::vector<std::string> messages;
  if (a.out.empty()) {
    report::WriteJson(report::LayerAnalysisJson(result, info), a.output);
  } else {
    CreatedFolders created(a.out);
    report::WriteLayerAnalysis({result}, info, a.output, a.out, &messages);
    created.Keep();
  }
  std::printf("%-6s %-4s %14s %15s %9s %10s %10s %8s\n", "layer", "HF", "prompt_entropy",
              "dataset_entropy", "curvature", "anisotropy", "aniso_cent", "eff_rank");
  for (const report::LayerAnalysisRow& r : result.layers) {
    std::printf("%-6d %-4s %14.4f %15.4f %9.4f %10.4f %10.4f %8.2f\n", r.info.layer,
                r.info.hf_index ? std::to_string(*r.info.hf_index).c_str() : "-",
                r.tokens.prompt_entropy, r.dataset_entropy, r.tokens.curvature,
                r.anisotropy.value_or(std::nan("")), r.anisotropy_centered.value_or(std::nan("")),
                r.effective_rank);
  }
  for (const std::string& m : messages) std::fprintf(stderr, "analyze: %s\n", m.c_str());
  std::fprintf(stderr,
               "analyze: wrote %s%s (forward + token statistics %.2f s, of which token "
               "statistics %.2f s; dataset statistics %.2f s; weight spectra %.2f s)\n",
               a.output.c_str(), a.out.empty() ? "" : (" and " + a.out + "/report.md").c_str(),
               result.forward_seconds, result.token_seconds, result.dataset_seconds,
               result.weight_seconds);
  return 0;
}

}  // namespace

Command RegisterAnalyze(CLI::App& app) {
  auto a = std::make_shared<AnalyzeArgs>();
  auto* sub = app.add_subcommand(
      "analyze",
      "Layer analysis of an RWKV model on a split: matrix entropy, curvature, anisotropy, "
      "effective rank per layer and weight spectra (JSON, Markdown, plots)");
  sub->add_option("--model", a->model, "RWKV-6 / RWKV-7 model folder or checkpoint file")
      ->required();
  sub->add_option("--data-dir", a->common.data_dir, "folder holding mrpc/ and stsb/")->required();
  sub->add_option("--task", a->task, "mrpc | stsb")
      ->required()
      ->check(CLI::IsMember({"mrpc", "stsb"}));
  sub->add_option("--split", a->split, "train | train-<N> | dev | test")->required();
  sub->add_option("--output", a->output, "OUT.json (per-layer statistics and weight spectra)")
      ->required();
  sub->add_option("--out", a->out, "folder for report.md and plots/ (optional)");
  sub->add_option("--alpha", a->alpha, "Rényi order of the matrix entropies (1 = Shannon)")
      ->capture_default_str();
  sub->add_option("--max-text-tokens", a->max_text_tokens,
                  "texts longer than this are left out of prompt entropy and curvature (counted)")
      ->capture_default_str()
      ->check(IntegerIn(2, kMaxCount));
  sub->add_flag("--no-weights", a->no_weights, "skip the weight spectra");
  sub->add_option("--layers", a->common.layers,
                  "all | final | blocks | list/ranges like 1,3,5 or 0-4 (ours; `info` lists them)")
      ->capture_default_str();
  sub->add_flag("--hf-index", a->common.hf_index, "read --layers as HF hidden_states indices");
  sub->add_option("--vocab", a->common.vocab, "World vocabulary file (default: beside the model)");
  sub->add_option("--tokenizer", a->common.tokenizer, "world | bytes")->capture_default_str();
  sub->add_option("--precision", a->common.precision, "matmul precision: f32 | bf16")
      ->capture_default_str();
  sub->add_option("--batch-tokens", a->common.batch_tokens, "tokens per forward pass")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--seed", a->common.seed, "seed of train-N subsets")
      ->capture_default_str()
      ->check(UnsignedInteger());
  AddThreadsOption(sub, &a->common.threads);
  AddGemmPathOption(sub, &a->common.gemm_path);
  return {sub, [a] { return RunAnalyze(*a); }};
}

}  // namespace rwkv_embed::cli
