// rwkv-embed eval: score any method(s) — RWKV layers, averaged GloVe, SIF, the random-weights
// control — on one split of MRPC or STS-B, writing MTEB-style JSON. Also defines the options
// shared with `reproduce` (eval_options.h).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "eval_options.h"
#include "report/report.h"
#include "report/runner.h"

namespace rwkv_embed::cli {
void AddEvalOptions(CLI::App* sub, EvalCliArgs* a) {
  sub->add_option("--data-dir", a->data_dir, "folder holding mrpc/ and stsb/ (like ../shared/data)")
      ->required();
  sub->add_option("--glove", a->glove,
                  "word vectors (GloVe/word2vec text) for the averaged baseline");
  sub->add_option("--model", a->model, "RWKV-6 model folder (config.json, *.safetensors)");
  sub->add_option("--vocab", a->vocab, "vocabulary file (default: MODEL/rwkv_vocab_v20230424.txt)");
  sub->add_option("--layers", a->layers,
                  "RWKV layers: all | final | blocks | list/ranges like 1,3,5 or 0-4 (ours: 0 = "
                  "after pre_ln, k = block k, L+1 = after ln_out)")
      ->capture_default_str();
  sub->add_flag("--hf-index", a->hf_index,
                "read --layers as HF hidden_states indices (= ours - 1)");
  sub->add_option(
         "--pooling", a->pooling,
         "mean | max | first | last | weighted-mean | mean-sqrt-len (RWKV; GloVe: mean|max)")
      ->capture_default_str();
  sub->add_option("--normalize", a->normalize, "none | l2 (after pooling)")->capture_default_str();
  sub->add_option("--precision", a->precision, "RWKV matmul precision: f32 | bf16")
      ->capture_default_str();
  sub->add_option("--batch-tokens", a->batch_tokens, "RWKV tokens per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--word-tokenizer", a->word_tokenizer,
                  "GloVe/SIF tokens: whitespace (the study) | regex (words and punctuation)")
      ->capture_default_str();
  sub->add_flag("--lowercase", a->lowercase,
                "lower-case words before the GloVe/SIF lookup (off = the study's plain tokens)");
  sub->add_flag("--sif", a->sif, "add the SIF baseline (Arora et al. 2017) on the same vectors");
  sub->add_flag("--random-control", a->random_control,
                "add the same RWKV architecture with random weights as a control");
  sub->add_option("--seed", a->seed, "seed of train-N subsets, bootstrap and random control")
      ->capture_default_str();
  sub->add_option("--bootstrap", a->bootstrap,
                  "bootstrap resamples for CIs and paired tests "
                  "(0 = none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--subset-seeds", a->subset_seeds,
                  "seeds of the train subsets for the spread (e.g. 0-4, 1,7; none)")
      ->capture_default_str();
  sub->add_option("--subset-size", a->subset_size, "pairs per train subset for the spread")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--fit-split", a->fit_split,
                  "split thresholds, SIF and subsets are fitted on: train | none")
      ->capture_default_str();
  sub->add_option("--undefined-cosine", a->undefined_cosine,
                  "score of a pair whose cosine is undefined (a zero vector); always counted")
      ->capture_default_str()
      ->check(CLI::Range(-1.0, 1.0));
  sub->add_flag("--no-comparisons", a->no_comparisons, "skip the paired tests");
  AddThreadsOption(sub, &a->threads);
  AddGemmPathOption(sub, &a->gemm_path);
}

report::RunOptions ToRunOptions(const EvalCliArgs& a) {
  ApplyThreads(a.threads);
  ApplyGemmPath(a.gemm_path);
  report::RunOptions o;
  o.data_dir = a.data_dir;
  o.glove = a.glove;
  o.model_dir = a.model;
  o.vocab = a.vocab;
  o.sif = a.sif;
  o.random_control = a.random_control;
  o.layers = a.layers;
  o.hf_index = a.hf_index;
  o.pooling = ParsePooling(a.pooling);
  o.normalization = ParseNormalization(a.normalize);
  if (a.precision != "f32" && a.precision != "bf16") {
    throw UsageError("--precision must be f32 or bf16, got '" + a.precision + "'");
  }
  o.precision =
      a.precision == "bf16" ? kernels::MatMulPrecision::kBF16 : kernels::MatMulPrecision::kF32;
  o.batch_tokens = a.batch_tokens;
  o.word_tokenizer = baselines::ParseWordTokenizer(a.word_tokenizer);
  o.lowercase = a.lowercase;
  o.seed = a.seed;
  o.bootstrap = a.bootstrap;
  o.subset_seeds = report::ParseSeedList(a.subset_seeds);
  o.subset_size = a.subset_size;
  o.undefined_cosine = a.undefined_cosine;
  o.comparisons = !a.no_comparisons;
  if (a.fit_split != "train" && a.fit_split != "none") {
    throw UsageError("--fit-split must be train or none, got '" + a.fit_split + "'");
  }
  o.log = [](const std::string& line) { std::cerr << line << "\n"; };
  return o;
}

std::string JoinedCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out;
  size_t start = 0;
  for (size_t i = 0; i <= all.size(); ++i) {
    if (i == all.size() || all[i] == '\0') {
      if (i > start) {
        std::string arg = all.substr(start, i - start);
        if (start == 0) arg = std::filesystem::path(arg).filename().string();
        if (!out.empty()) out += ' ';
        out += arg.find_first_of(" \t'\"") == std::string::npos ? arg : "'" + arg + "'";
      }
      start = i + 1;
    }
  }
  return out;
}

namespace {

struct EvalArgs {
  EvalCliArgs common;
  std::string task, split, output;
};

// One line per method/layer: what a person wants to see at the end of a run.
void PrintSummary(const report::TaskResults& t) {
  std::printf("%-15s %-6s %-4s %-11s %6s %9s %18s %9s %9s\n", "method", "layer", "HF", "split",
              "pairs", "spearman", "95% CI", "roc_auc", "accuracy");
  for (const eval::MethodResult& m : t.methods) {
    for (const eval::SplitResult& s : m.splits) {
      for (const eval::LayerResult& l : s.layers) {
        char ci[64] = "-";
        if (std::isfinite(l.spearman_ci.lo)) {
          std::snprintf(ci, sizeof(ci), "[%.4f, %.4f]", l.spearman_ci.lo, l.spearman_ci.hi);
        }
        std::printf("%-15s %-6d %-4s %-11s %6lld %9.4f %18s %9.4f %9.4f\n", m.method.c_str(),
                    l.layer, l.hf_layer ? std::to_string(*l.hf_layer).c_str() : "-",
                    s.split.c_str(), static_cast<long long>(s.n_pairs), l.spearman, ci, l.roc_auc,
                    l.classification ? l.classification->accuracy : std::nan(""));
      }
    }
  }
}

int RunEval(const EvalArgs& a) {
  if (a.output.size() < 6 || !a.output.ends_with(".json")) {
    throw UsageError("--output must name a .json file, got '" + a.output + "'");
  }
  report::RunOptions o = ToRunOptions(a.common);
  o.tasks.push_back({a.task, {a.split}, a.common.fit_split == "none" ? "" : a.common.fit_split});
  o.subset_size = a.common.subset_size;
  report::RunInfo info;
  info.tool_version = RWKV_EMBED_VERSION;
  info.command_line = JoinedCommandLine();
  info.model_name = !a.common.model.empty()
                        ? std::filesystem::path(a.common.model).filename().string()
                        : std::filesystem::path(a.common.glove).filename().string();
  const report::RunOutput out = report::RunEvaluation(o, info);
  report::WriteJson(report::TaskJson(out.tasks.front(), out.run), a.output);
  PrintSummary(out.tasks.front());
  for (const std::string& n : out.run.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::fprintf(stderr, "eval: wrote %s (%.2f s)\n", a.output.c_str(), out.run.evaluation_seconds);
  return 0;
}

}  // namespace

Command RegisterEval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand(
      "eval", "Score RWKV layers and/or word-vector baselines on a sentence-pair task");
  sub->add_option("--task", a->task, "mrpc | stsb")
      ->required()
      ->check(CLI::IsMember({"mrpc", "stsb"}));
  sub->add_option("--split", a->split,
                  "train | train-<N> (seeded subset, --seed) | dev | test (MRPC test = the "
                  "labelled msr_paraphrase_test.txt)")
      ->required();
  sub->add_option("--output", a->output, "OUT.json (MTEB-style scores)")->required();
  AddEvalOptions(sub, &a->common);
  return {sub, [a] { return RunEval(*a); }};
}

}  // namespace rwkv_embed::cli
