// Evaluation output: MTEB-style JSON (results/<model>/<task>.json), the Markdown report with the
// study's published tables side by side, and the qualitative sample-pair table.
//
// JSON conventions (docs/evaluation.md#result-files): scores are 0-1 fractions as computed
// (Spearman in [-1, 1]), main_score = cosine_spearman (the study's primary metric; MTEB's
// pair-classification main score would be max_ap, which is also written as "ap"). There is never a
// NaN: an undefined value is written as null and its field name is listed in the score object's
// "null_reasons" with why.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/pairs.h"
#include "eval/evaluator.h"

namespace rwkv_embed::report {

// The study's published numbers ("Exploring RWKV for Sentence Embeddings", Tables 1-3): RWKV-6
// Finch 1.6B (HF hidden-state indices), GloVe 6B 50d, MRPC train 1000 random / validation 408,
// Tesla T4.
struct PublishedRow {
  int hf_layer;  // -1: the GloVe baseline
  double train, validation;
};
inline constexpr PublishedRow kStudySpearman[] = {
    {1, 0.2879, 0.3498}, {3, 0.2766, 0.3410},  {5, 0.2671, 0.3345}, {7, 0.2491, 0.3170},
    {9, 0.2296, 0.3127}, {11, 0.2245, 0.3073}, {-1, 0.3876, 0.4326}};
inline constexpr PublishedRow kStudySecondsPerPair[] = {{11, 0.4141, 0.4025}, {-1, 0.0006, 0.2186}};
inline constexpr PublishedRow kStudyPeakGpuMb[] = {{11, 3078.38, 3078.44}, {-1, 3059.73, 3077.13}};

// What one run did and with what, written into every output.
struct RunInfo {
  std::string tool_version;  // RWKV_EMBED_VERSION
  std::string command_line;
  std::string model_name;          // results/<model_name>/
  nlohmann::json settings;         // every choice: seed, tokenizer, lowercase, pooling, files, ...
  std::vector<std::string> notes;  // plain statements, e.g. which model and vectors were used
  double evaluation_seconds = 0;
  std::string started_at;  // ISO 8601 UTC
  // A sweep over several processes (rwkv-embed-mpi, report/sweep.h): SweepAccounting, written as
  // the JSON's "mpi" object; null (not written) for a single process.
  nlohmann::json mpi;
};

struct TaskResults {
  std::string task;                         // "mrpc", "stsb"
  std::vector<eval::MethodResult> methods;  // e.g. glove, sif, rwkv, random-control
  std::vector<eval::Comparison> comparisons;
  std::vector<PairDataset> samples;  // datasets the qualitative table may quote (by split name)

  const eval::MethodResult* FindMethod(const std::string& method) const;
};

// A finite number, or null.
nlohmann::json Number(double v);
// Whether any number anywhere in `j` is NaN or infinite.
bool HasNonFinite(const nlohmann::json& j);

// One score object (see the file comment) for a layer of a method on a split.
nlohmann::json ScoreObject(const eval::MethodResult& method, const eval::SplitResult& split,
                           const eval::LayerResult& layer, double undefined_cosine_value);

// The whole task file: {task_name, tool, tool_version, evaluation_time, settings, notes,
// scores{split:[score objects]}, comparisons, subset_spread, costs}.
nlohmann::json TaskJson(const TaskResults& task, const RunInfo& run);

// Writes pretty JSON atomically (WriteText), creating parent folders. NumericError if `j` holds a
// non-finite number (cannot happen for TaskJson output; a guard against future fields), IoError on
// failure.
void WriteJson(const nlohmann::json& j, const std::filesystem::path& path);

// The qualitative table: the first `n` pairs of `split` with their label and each method's cosine
// (RWKV: the layers in `rwkv_layers`, our numbering). The study's appendix table shows the first
// pairs of the MRPC validation set (its samples 2 and 5 are label 0, as dev.tsv's are).
std::string QualitativeTable(const TaskResults& task, const std::string& split, size_t n,
                             const std::vector<int>& rwkv_layers);

// Markdown report of every task: the study's three tables with our numbers beside the published
// ones, the full layer sweep with CIs and binary metrics, paired tests, subset spread, costs, the
// qualitative table and links to `plots` (file names relative to the report).
std::string MarkdownReport(const std::vector<TaskResults>& tasks, const RunInfo& run,
                           const std::vector<std::string>& plots);

// Writes text to a file through <path>.partial renamed when complete (io/atomic_file.h), creating
// parent folders; IoError naming it on failure.
void WriteText(const std::string& text, const std::filesystem::path& path);

}  // namespace rwkv_embed::report
