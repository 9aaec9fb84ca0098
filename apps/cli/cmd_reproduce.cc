// rwkv-embed reproduce: the study's protocol in one command — MRPC seeded train-1000 subset + full
// dev (and test), STS-B dev/test, every RWKV layer from one forward pass (the study's HF layers
// 1,3,...,11 reported side by side with its numbers), the GloVe baseline, SIF and the
// random-weights control — written as OUT/<model>/{mrpc,stsb}.json, report.md and plots/.
// Several --model values (e.g. an RWKV-6 and an RWKV-7) go side by side into OUT/<a>+<b>/.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <utility>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "eval_options.h"
#include "io/atomic_file.h"
#include "report/layer_analysis.h"
#include "report/runner.h"

namespace rwkv_embed::cli {
namespace {

struct ReproduceArgs {
  EvalCliArgs common;
  std::string out, tasks = "mrpc,stsb";
  int64_t train_subset = 1000;
  bool no_sif = false, no_random_control = false;
  bool beyond = false;  // + the layer analysis (issue 9)
};

// Appends a "Beyond the study" section to the report written by WriteOutputs.
void AppendReportSection(const std::filesystem::path& report, const std::string& section) {
  std::ifstream in(report, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  report::WriteText(text + "\n" + section, report);
}

int RunReproduce(const ReproduceArgs& a) {
  if (a.common.models.empty() || a.common.glove.empty() || a.common.data_dir.empty()) {
    throw UsageError("reproduce needs --model (one or more), --glove FILE and --data-dir DIR");
  }
  // Inputs and the output folder are checked before anything is computed or created.
  CheckOutputFolder(a.out, "--out");
  if (!std::filesystem::is_directory(a.common.data_dir)) {
    throw IoError("--data-dir " + a.common.data_dir + " is not a folder");
  }
  for (const std::string& model : a.common.models) {  // a folder or a checkpoint file
    if (!std::filesystem::exists(model)) throw IoError("--model " + model + " does not exist");
  }
  EvalCliArgs c = a.common;
  c.sif = !a.no_sif;
  c.random_control = !a.no_random_control;
  // Beyond the study: every pooling method too, unless --poolings names some.
  if (a.beyond && c.poolings.empty()) c.poolings = "all";
  report::RunOptions o = ToRunOptions(c);
  const std::string fit = c.fit_split == "none" ? "" : c.fit_split;
  const std::string train = "train-" + std::to_string(a.train_subset);
  std::string rest = a.tasks;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string task = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    if (task == "mrpc") {
      o.tasks.push_back({"mrpc", {train, "dev", "test"}, fit});
    } else if (task == "stsb") {
      o.tasks.push_back({"stsb", {"dev", "test"}, fit});
    } else {
      throw UsageError("unknown task '" + task + "' in --tasks (expected mrpc and/or stsb)");
    }
  }
  // An ablated run gets its own folder, so that it never overwrites the intact model's results:
  // OUT/<model>-ablated-skip-tmix_3-zero-bonus_all/ for --ablate skip-tmix:3 --ablate
  // zero-bonus:all.
  std::string model_name = RunName(c);
  if (!o.ablations.empty()) model_name += "-ablated";
  for (const AblationSpec& s : o.ablations) {
    std::string part = s.Name();
    std::replace(part.begin(), part.end(), ':', '_');
    std::replace(part.begin(), part.end(), ',', '.');
    model_name += "-" + part;
  }
  const std::filesystem::path out_dir = std::filesystem::path(a.out) / model_name;
  o.scratch_dir = out_dir;
  // rwkv-embed-mpi: an error on any rank ends the job through MPI_Abort, which runs no cleanup, and
  // ranks other than 0 write nothing: OUT/<model>/ is created once every result is in (a failed
  // job leaves none), the random controls go to $TMPDIR.
  const bool sweep = static_cast<bool>(GetSweepHook().install);
  if (sweep) o.scratch_dir.clear();
  report::RunInfo info;
  info.tool_version = RWKV_EMBED_VERSION;
  info.command_line = JoinedCommandLine();
  info.model_name = model_name;
  // Removed again (when still empty) if the run fails: no empty OUT/<model>/ left behind.
  std::optional<CreatedFolders> created;
  if (!sweep) created.emplace(out_dir);
  const report::RunOutput out = report::RunEvaluation(o, info);
  if (out.gathered_elsewhere) return 0;  // rank 0 writes
  if (sweep) created.emplace(out_dir);
  std::vector<std::string> messages;
  auto files = report::WriteOutputs(out, out_dir, &messages);
  if (a.beyond) {
    AppendReportSection(out_dir / "report.md",
                        report::BeyondLayerAnalysis(o, info, out_dir, &files, &messages));
  }
  created->Keep();
  for (const std::string& n : out.run.notes) std::printf("note: %s\n", n.c_str());
  for (const report::TaskResults& t : out.tasks) {
    for (const eval::MethodResult& m : t.methods) {
      for (const eval::SplitResult& s : m.splits) {
        std::printf("%-5s %-11s %-15s", t.task.c_str(), s.split.c_str(), m.method.c_str());
        for (const eval::LayerResult& l : s.layers) {
          if (m.layered()) std::printf(" L%d", l.layer);
          std::printf(" %.4f", l.spearman);
        }
        std::printf("  (%.2e s/pair)\n", s.SecondsPerPair());
      }
    }
  }
  for (const std::string& msg : messages) std::fprintf(stderr, "reproduce: %s\n", msg.c_str());
  std::printf("reproduce: wrote %zu files into %s in %.1f s (report: %s)\n", files.size(),
              out_dir.string().c_str(), out.run.evaluation_seconds,
              (out_dir / "report.md").string().c_str());
  return 0;
}

}  // namespace

Command RegisterReproduce(CLI::App& app) {
  auto a = std::make_shared<ReproduceArgs>();
  auto* sub = app.add_subcommand(
      "reproduce",
      "Run the study's protocol (MRPC train-1000 + dev, all layers, GloVe) and more; write "
      "JSON, a Markdown report and plots into OUT/<model>/");
  sub->add_option("--out", a->out, "output folder (results go to OUT/<model name>/)")->required();
  sub->add_option("--tasks", a->tasks, "mrpc and/or stsb")->capture_default_str();
  sub->add_option("--train-subset", a->train_subset,
                  "pairs in the scored MRPC train subset (the study: 1000)")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_flag("--no-sif", a->no_sif, "leave out the SIF baseline");
  sub->add_flag("--no-random-control", a->no_random_control,
                "leave out the random-weights control");
  sub->add_flag(
      "--beyond", a->beyond,
      "also answer the study's open questions: layer analysis (entropy, curvature, "
      "anisotropy, effective rank, weight spectra; as `analyze`) on each task's dev split, and "
      "every pooling method beyond the mean (--poolings all unless --poolings is given); "
      "ablation heat maps come from `rwkv-embed ablate`");
  AddEvalOptions(sub, &a->common);
  return {sub, [a] { return RunReproduce(*a); }};
}

}  // namespace rwkv_embed::cli
