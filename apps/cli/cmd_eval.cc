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
#include "io/atomic_file.h"
#include "methods/method_spec.h"
#include "model/embedding_rwkv/embedding_rwkv.h"
#include "report/report.h"
#include "report/runner.h"

namespace rwkv_embed::cli {
void AddEvalOptions(CLI::App* sub, EvalCliArgs* a) {
  sub->add_option("--data-dir", a->data_dir,
                  "folder holding mrpc/ and stsb/ (like ../shared/data)");
  sub->add_option("--glove", a->glove,
                  "word vectors (GloVe/word2vec text) for the averaged baseline");
  sub->add_option("--model", a->models,
                  "RWKV-6 / RWKV-7 model folder or checkpoint file (.safetensors, .pth); repeat "
                  "to put several models side by side");
  sub->add_option("--vocab", a->vocab,
                  "World vocabulary file (default: rwkv_vocab_v20230424.txt beside the model, "
                  "else the installed one)");
  sub->add_option("--tokenizer", a->tokenizer,
                  "world | bytes (id = UTF-8 byte, for byte-level models such as "
                  "rwkv.cpp-tiny-rwkv7); applies to every --model")
      ->capture_default_str();
  sub->add_option("--layers", a->layers,
                  "RWKV layers: all | final | blocks | list/ranges like 1,3,5 or 0-4 (ours: 0 = "
                  "after pre_ln, k = block k, L+1 = after ln_out; `info` lists them)")
      ->capture_default_str();
  sub->add_flag("--hf-index", a->hf_index,
                "read --layers as HF hidden_states indices (RWKV-6: ours - 1; RWKV-7: see `info`)");
  sub->add_option(
         "--pooling", a->pooling,
         "mean | max | first | last | weighted-mean | mean-sqrt-len (RWKV; GloVe: mean|max)")
      ->capture_default_str();
  sub->add_option("--normalize", a->normalize, "none | l2 (after pooling)")->capture_default_str();
  sub->add_option("--precision", a->precision, "RWKV matmul precision: f32 | bf16")
      ->capture_default_str();
  sub->add_option("--batch-tokens", a->batch_tokens, "RWKV tokens per forward pass")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--word-tokenizer", a->word_tokenizer,
                  "GloVe/SIF tokens: whitespace (the study) | regex (words and punctuation)")
      ->capture_default_str();
  sub->add_flag("--lowercase", a->lowercase,
                "lower-case words before the GloVe/SIF lookup (off = the study's plain tokens)");
  sub->add_flag("--sif", a->sif, "add the SIF baseline (Arora et al. 2017) on the same vectors");
  sub->add_flag("--random-control", a->random_control,
                "add the same RWKV architecture with random weights as a control");
  sub->add_option("--seed", a->seed, "seed of train-N subsets, bootstrap and random control")
      ->capture_default_str()
      ->check(UnsignedInteger());
  sub->add_option("--bootstrap", a->bootstrap,
                  "bootstrap resamples for CIs and paired tests "
                  "(0 = none)")
      ->capture_default_str()
      ->check(IntegerIn(0, 10'000'000));
  sub->add_option("--subset-seeds", a->subset_seeds,
                  "seeds of the train subsets for the spread (e.g. 0-4, 1,7; none)")
      ->capture_default_str();
  sub->add_option("--subset-size", a->subset_size, "pairs per train subset for the spread")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--fit-split", a->fit_split,
                  "split thresholds, SIF and subsets are fitted on: train | none")
      ->capture_default_str();
  sub->add_option("--undefined-cosine", a->undefined_cosine,
                  "score of a pair whose cosine is undefined (a zero vector); always counted")
      ->capture_default_str()
      ->check(CLI::Range(-1.0, 1.0));
  sub->add_flag("--no-comparisons", a->no_comparisons, "skip the paired tests");
  AddAblateOption(sub, &a->ablate);
  sub->add_option(
      "--poolings", a->poolings,
      "pooling methods beyond the mean, each scored as method <model>/<spec> beside "
      "mean pooling: all | comma list of BASE[+STEP...] (state-wkv+pca64, "
      "state-shift, prompteol, echo, prompt:NAME, mean+center, mean+whiten, "
      "mean+abtt, fusion-mean, fusion-concat, fusion-learned, attention; "
      "docs/evaluation.md#pooling-beyond-the-mean); fitted ones fit on --fit-split only");
  sub->add_option("--templates", a->templates,
                  "prompt templates file (JSON, as the installed prompt_templates.json) searched "
                  "before the installed one for prompt:NAME")
      ->type_name("FILE");
  sub->add_option("--heads", a->heads,
                  "EmbeddingRWKV checkpoints: also score these task heads, each as method "
                  "<model>/head-<name>: comma list of cls, sts, retr (or all)");
  sub->add_option("--eos-mode", a->eos_mode,
                  "EmbeddingRWKV text preprocessing for --heads: single | echo | eval (the "
                  "published MTEB runs)")
      ->capture_default_str();
  AddThreadsOption(sub, &a->threads);
  AddGemmPathOption(sub, &a->gemm_path);
}

report::RunOptions ToRunOptions(const EvalCliArgs& a) {
  ApplyThreads(a.threads);
  ApplyGemmPath(a.gemm_path);
  report::RunOptions o;
  o.data_dir = a.data_dir;
  o.glove = a.glove;
  for (const std::string& m : a.models) o.models.emplace_back(m);
  o.vocab = a.vocab;
  o.tokenizer = ParseTokenizerFlag(a.tokenizer);
  if (o.tokenizer == TokenizerKind::kBytes && !a.vocab.empty()) {
    throw UsageError("--vocab is for the World tokenizer; --tokenizer bytes needs none");
  }
  o.sif = a.sif;
  o.random_control = a.random_control;
  o.ablations = ParseAblations(a.ablate);
  o.layers = a.layers;
  o.hf_index = a.hf_index;
  o.pooling = ParsePooling(a.pooling);
  o.normalization = ParseNormalization(a.normalize);
  o.precision = ParsePrecisionFlag(a.precision);
  o.batch_tokens = a.batch_tokens;
  o.word_tokenizer = baselines::ParseWordTokenizer(a.word_tokenizer);
  o.lowercase = a.lowercase;
  o.seed = a.seed;
  o.bootstrap = a.bootstrap;
  o.subset_seeds = report::ParseSeedList(a.subset_seeds);
  o.subset_size = a.subset_size;
  if (!(a.undefined_cosine >= -1.0 && a.undefined_cosine <= 1.0)) {  // CLI::Range lets NaN pass
    throw UsageError("--undefined-cosine must be a number in [-1, 1]");
  }
  o.undefined_cosine = a.undefined_cosine;
  o.comparisons = !a.no_comparisons;
  if (!a.poolings.empty()) o.poolings = methods::ParsePoolingList(a.poolings);
  o.templates = a.templates;
  ParseEosMode(a.eos_mode);
  o.eos_mode = a.eos_mode;
  for (std::string rest = a.heads == "all" ? "cls,sts,retr" : a.heads; !rest.empty();) {
    const size_t comma = rest.find(',');
    const std::string head = rest.substr(0, comma);
    ParseEmbeddingRwkvHead(head);  // UsageError naming the valid heads
    o.heads.push_back(head);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  if (!o.heads.empty()) {
    bool any = false;
    for (const auto& m : o.models) any = any || HasEmbeddingRwkvHeads(m);
    if (!any) throw UsageError("--heads: no --model is an EmbeddingRWKV checkpoint (head.*_head)");
  }
  if (a.fit_split != "train" && a.fit_split != "none") {
    throw UsageError("--fit-split must be train or none, got '" + a.fit_split + "'");
  }
  o.log = [](const std::string& line) { std::cerr << line << "\n"; };
  if (GetSweepHook().install) GetSweepHook().install(&o);
  return o;
}

SweepHook& GetSweepHook() {
  static SweepHook hook;
  return hook;
}

std::string RunName(const EvalCliArgs& a) {
  std::string name;
  for (const std::string& m : a.models) {
    const std::filesystem::path p = std::filesystem::path(m).lexically_normal();
    name += (name.empty() ? "" : "+") +
            (p.has_filename() ? p.filename().string() : p.parent_path().filename().string());
  }
  return name.empty() ? std::filesystem::path(a.glove).filename().string() : name;
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
  // --pairs FILE: a generic pair file instead of --task/--split/--data-dir.
  std::string pairs, fit_pairs, label_type = "auto", format = "auto", sentence1 = "sentence1",
                                sentence2 = "sentence2", label = "label", id = "id";
  bool skip_malformed = false;
};

PairFileFormat ParseFormat(const std::string& name) {
  if (name == "tsv") return PairFileFormat::kTsv;
  if (name == "csv") return PairFileFormat::kCsv;
  if (name == "jsonl") return PairFileFormat::kJsonl;
  return PairFileFormat::kAuto;  // CLI11 has checked the choice
}

PairLabelType ParseLabelType(const std::string& name) {
  if (name == "binary") return PairLabelType::kBinary;
  if (name == "score") return PairLabelType::kScore;
  return PairLabelType::kAuto;
}

// The task plan: one split of MRPC/STS-B from --data-dir, or the --pairs file.
report::TaskPlan PlanOf(const EvalArgs& a) {
  report::TaskPlan plan;
  const std::string fit = a.common.fit_split == "none" ? "" : a.common.fit_split;
  if (a.pairs.empty()) {
    if (a.task.empty() || a.split.empty() || a.common.data_dir.empty()) {
      throw UsageError(
          "eval needs --task, --split and --data-dir (MRPC/STS-B), or --pairs FILE (any pair "
          "file)");
    }
    if (!a.fit_pairs.empty()) throw UsageError("--fit-pairs goes with --pairs");
    plan.task = a.task;
    plan.splits = {a.split};
    plan.fit_split = fit;
    return plan;
  }
  if (!a.task.empty() || !a.split.empty()) {
    throw UsageError("--pairs FILE replaces --task and --split: give one or the other");
  }
  plan.pair_file = a.pairs;
  plan.fit_pair_file = a.fit_pairs;
  // Named after the file: "pairs.tsv" scores as task "pairs", split "pairs".
  plan.task = std::filesystem::path(a.pairs).stem().string();
  plan.splits = {plan.task};
  plan.fit_split = "";
  PairFileOptions& po = plan.pair_options;
  po.format = ParseFormat(a.format);
  po.label_type = ParseLabelType(a.label_type);
  po.sentence1_column = a.sentence1;
  po.sentence2_column = a.sentence2;
  po.label_column = a.label;
  po.id_column = a.id;
  po.read.skip_malformed = a.skip_malformed;
  return plan;
}

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
  CheckOutputFile(a.output, "--output");  // before any work: a typo must not cost a whole run
  report::RunOptions o = ToRunOptions(a.common);
  o.tasks.push_back(PlanOf(a));
  o.subset_size = a.common.subset_size;
  report::RunInfo info;
  info.tool_version = RWKV_EMBED_VERSION;
  info.command_line = JoinedCommandLine();
  info.model_name = RunName(a.common);
  const report::RunOutput out = report::RunEvaluation(o, info);
  if (out.gathered_elsewhere) return 0;  // rwkv-embed-mpi: rank 0 writes
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
  sub->add_option("--task", a->task, "mrpc | stsb (with --split and --data-dir)")
      ->check(CLI::IsMember({"mrpc", "stsb"}));
  sub->add_option("--split", a->split,
                  "train | train-<N> (seeded subset, --seed) | dev | test (MRPC test = the "
                  "labelled msr_paraphrase_test.txt)");
  sub->add_option("--pairs", a->pairs,
                  "score a generic pair file instead of --task/--split: TSV or CSV with a header "
                  "row, or JSON Lines (format from the extension or --format)")
      ->type_name("FILE");
  sub->add_option("--fit-pairs", a->fit_pairs,
                  "with --pairs: a pair file to fit thresholds, SIF and subsets on (default: "
                  "nothing fitted)")
      ->type_name("FILE");
  sub->add_option("--label-type", a->label_type,
                  "with --pairs: binary (0/1: adds ROC-AUC, AP, accuracy) | score (graded) | auto "
                  "(binary when every label is 0 or 1)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "binary", "score"}));
  sub->add_option("--format", a->format, "with --pairs: auto (by extension) | tsv | csv | jsonl")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "tsv", "csv", "jsonl"}));
  sub->add_option("--sentence1-column", a->sentence1, "with --pairs: column or key of sentence 1")
      ->capture_default_str();
  sub->add_option("--sentence2-column", a->sentence2, "with --pairs: column or key of sentence 2")
      ->capture_default_str();
  sub->add_option("--label-column", a->label, "with --pairs: column or key of the label")
      ->capture_default_str();
  sub->add_option("--id-column", a->id,
                  "with --pairs: column or key of the pair id (optional; default id: line number)")
      ->capture_default_str();
  sub->add_flag("--skip-malformed", a->skip_malformed,
                "with --pairs: skip malformed rows (counted in the notes) instead of failing");
  sub->add_option("--output", a->output, "OUT.json (MTEB-style scores)")->required();
  AddEvalOptions(sub, &a->common);
  return {sub, [a] { return RunEval(*a); }};
}

}  // namespace rwkv_embed::cli
