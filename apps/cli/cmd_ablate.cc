// rwkv-embed ablate: the intact model and a grid of ablations (each switch x each block, or the
// user's --ablate list) on one split, Δ Spearman per layer with paired-bootstrap CIs, written as
// JSON, a Markdown table and heat maps (report/ablation_study.h).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "eval_options.h"
#include "io/atomic_file.h"
#include "report/ablation_study.h"

namespace rwkv_embed::cli {
namespace {

struct AblateArgs {
  std::string model, data_dir, vocab,
      task = "mrpc", split = "dev", output, out, grid, blocks = "all", layers = "all",
      pooling = "mean", normalize = "none", precision = "f32", tokenizer = "world", gemm_path;
  std::vector<std::string> ablate;
  bool hf_index = false;
  int threads = 0;
  int64_t batch_tokens = 2048, bootstrap = 1000;
  uint64_t seed = 0;
};

constexpr const char* kDefaultGrid = "tmix,cmix,freeze-decay,zero-bonus,decay-scale=2";

int RunAblate(const AblateArgs& a) {
  if (a.output.size() < 6 || !a.output.ends_with(".json")) {
    throw UsageError("--output must name a .json file, got '" + a.output + "'");
  }
  // Everything that can be checked is checked before the (long) run.
  CheckOutputFile(a.output, "--output");
  if (!a.out.empty()) CheckOutputFolder(a.out, "--out");
  if (!std::filesystem::exists(a.model)) throw IoError("--model " + a.model + " does not exist");
  if (!std::filesystem::is_directory(a.data_dir)) {
    throw IoError("--data-dir " + a.data_dir + " is not a folder");
  }
  ApplyThreads(a.threads);
  ApplyGemmPath(a.gemm_path);
  report::AblationStudyOptions o;
  o.model = a.model;
  o.vocab = a.vocab;
  o.data_dir = a.data_dir;
  o.tokenizer = ParseTokenizerFlag(a.tokenizer);
  o.task = a.task;
  o.split = a.split;
  o.layers = a.layers;
  o.hf_index = a.hf_index;
  o.pooling = ParsePooling(a.pooling);
  o.normalization = ParseNormalization(a.normalize);
  o.precision = ParsePrecisionFlag(a.precision);
  o.batch_tokens = a.batch_tokens;
  o.specs = ParseAblations(a.ablate);
  // The default grid when the user gives neither a grid nor a list.
  const std::string grid = a.grid.empty() && o.specs.empty() ? kDefaultGrid : a.grid;
  if (!grid.empty()) o.grid = ParseAblationGrid(grid);
  ParseBlockList(a.blocks);  // a bad --blocks fails before the model loads
  o.grid_blocks = a.blocks;
  o.bootstrap = a.bootstrap;
  o.seed = a.seed;
  o.log = [](const std::string& line) { std::cerr << line << "\n"; };
  // rwkv-embed-mpi: the passes spread over the ranks; rank 0 writes everything once every result
  // is in (the output folder is only created then), the other ranks nothing.
  if (GetSweepHook().install_ablation) GetSweepHook().install_ablation(&o);
  report::RunInfo info;
  info.tool_version = RWKV_EMBED_VERSION;
  info.command_line = JoinedCommandLine();
  const std::filesystem::path p = std::filesystem::path(a.model).lexically_normal();
  info.model_name = p.has_filename() ? p.filename().string() : p.parent_path().filename().string();
  const report::AblationStudy study = report::RunAblationStudy(o, info);
  if (study.gathered_elsewhere) return 0;  // rank 0 writes
  std::vector<std::string> messages;
  std::optional<CreatedFolders> created;
  if (!a.out.empty()) created.emplace(a.out);
  const auto files = report::WriteAblationOutputs(study, a.output, a.out, &messages);
  if (created) created->Keep();
  for (const std::string& n : study.run.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  for (const std::string& m : messages) std::fprintf(stderr, "ablate: %s\n", m.c_str());
  std::fprintf(stderr, "ablate: %zu ablations; wrote %zu files (%s%s%s) in %.1f s\n",
               study.ablations.size(), files.size(), a.output.c_str(), a.out.empty() ? "" : ", ",
               a.out.empty() ? "" : (std::filesystem::path(a.out) / "ablation.md").c_str(),
               study.run.evaluation_seconds);
  return 0;
}

}  // namespace

Command RegisterAblate(CLI::App& app) {
  auto a = std::make_shared<AblateArgs>();
  auto* sub = app.add_subcommand(
      "ablate",
      "Score the intact model and each ablation (switch x block grid or --ablate list) on one "
      "split: delta Spearman per layer with paired-bootstrap CIs, as JSON, Markdown and heat "
      "maps");
  sub->add_option("--model", a->model, "RWKV-6 / RWKV-7 model folder or checkpoint file")
      ->required();
  sub->add_option("--data-dir", a->data_dir, "folder holding mrpc/ and stsb/")->required();
  sub->add_option("--task", a->task, "mrpc | stsb")
      ->capture_default_str()
      ->check(CLI::IsMember({"mrpc", "stsb"}));
  sub->add_option("--split", a->split, "train | train-<N> | dev | test")->capture_default_str();
  sub->add_option("--grid", a->grid,
                  std::string("switches, each run on each block of --blocks: tmix, cmix, "
                              "freeze-decay, zero-bonus, decay-scale=S (default without "
                              "--ablate: ") +
                      kDefaultGrid + ")");
  sub->add_option("--blocks", a->blocks, "blocks of the grid, 1-based: all | 1-24 | 1,5,9")
      ->capture_default_str();
  AddAblateOption(sub, &a->ablate);
  sub->add_option("--output", a->output, "OUT.json")->required();
  sub->add_option("--out", a->out, "folder for ablation.md and plots/ (heat maps)");
  sub->add_option("--vocab", a->vocab, "World vocabulary file (default: beside the model)");
  sub->add_option("--tokenizer", a->tokenizer, "world | bytes")->capture_default_str();
  sub->add_option("--layers", a->layers, "scored layers: all | final | blocks | 1,3,5 | 0-4")
      ->capture_default_str();
  sub->add_flag("--hf-index", a->hf_index, "read --layers as HF hidden_states indices");
  sub->add_option("--pooling", a->pooling,
                  "mean | max | first | last | weighted-mean | "
                  "mean-sqrt-len")
      ->capture_default_str();
  sub->add_option("--normalize", a->normalize, "none | l2")->capture_default_str();
  sub->add_option("--precision", a->precision, "f32 | bf16")->capture_default_str();
  sub->add_option("--batch-tokens", a->batch_tokens, "tokens per forward pass")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--bootstrap", a->bootstrap, "paired bootstrap resamples (0 = no CIs)")
      ->capture_default_str()
      ->check(IntegerIn(0, 10'000'000));
  sub->add_option("--seed", a->seed, "bootstrap seed (and train-N subset)")
      ->capture_default_str()
      ->check(UnsignedInteger());
  AddThreadsOption(sub, &a->threads);
  AddGemmPathOption(sub, &a->gemm_path);
  return {sub, [a] { return RunAblate(*a); }};
}

}  // namespace rwkv_embed::cli
