// `rwkv-embed analyze` and `reproduce --beyond`: the study's open questions about layers (issue 9,
// item 1) answered from one forward pass over a split's distinct sentences. Per layer tap: prompt
// entropy and curvature of each text's token trajectory (streamed from the embedder's token tap,
// analysed when a text's last piece arrives), and dataset entropy, anisotropy and effective rank
// of the mean-pooled sentence vectors; per block: the singular-value spectra of the projection
// weights. Estimators and their definitions: analysis/statistics.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "analysis/statistics.h"
#include "analysis/token_statistics.h"
#include "core/embedder.h"
#include "model/rwkv_embedder.h"
#include "report/plots.h"
#include "report/runner.h"

namespace rwkv_embed::report {

struct LayerAnalysisOptions {
  std::vector<int> layers;  // our numbering; empty = every tap
  double alpha = 1.0;       // Rényi order of both entropies
  int64_t max_text_tokens = 4096;
  bool weights = true;  // also the weight spectra
};

struct LayerAnalysisRow {
  LayerInfo info;
  analysis::TokenLayerStatistics tokens;  // prompt entropy, curvature
  double dataset_entropy = 0.0;
  std::optional<double> anisotropy, anisotropy_centered;  // none: < 2 non-zero vectors
  double effective_rank = 0.0;
};

struct WeightSpectrum {
  int64_t block = 0;   // 1-based, as in the HF names
  std::string matrix;  // HF name inside the block
  int64_t rows = 0, cols = 0;
  std::vector<double> singular_values;  // descending
  double effective_rank = 0.0;
  analysis::DecayFit decay;
};

struct LayerAnalysis {
  std::string model;         // name shown (folder name)
  std::string architecture;  // "rwkv6" | "rwkv7"
  std::string description;   // the model's Describe()
  bool random_weights = false;
  std::string task, split;
  int64_t texts = 0, tokens = 0, empty_texts = 0, texts_over_cap = 0;
  double alpha = 1.0;
  int64_t max_text_tokens = 0;
  std::vector<LayerAnalysisRow> layers;
  std::vector<WeightSpectrum> weights;
  // Wall time: the forward pass with the token statistics (token_seconds of it inside the
  // tap), the dataset statistics, the weight spectra; peak RSS of the whole analysis.
  double forward_seconds = 0.0, token_seconds = 0.0, dataset_seconds = 0.0, weight_seconds = 0.0;
  int64_t peak_rss_kib = -1;
};

// Analyses `texts` (distinct, as `eval` embeds them) with one EmbedTokens pass.
LayerAnalysis AnalyzeLayers(RwkvEmbedder& embedder, std::span<const std::string> texts,
                            const LayerAnalysisOptions& options);

// Singular values of every projection matrix of every block (SequenceModel::BlockProjections).
std::vector<WeightSpectrum> AnalyzeWeights(const SequenceModel& model);

// Loads the model and the task's split (distinct sentences) and analyses them.
struct LayerAnalysisPlan {
  std::filesystem::path model, vocab, data_dir;
  TokenizerKind tokenizer = TokenizerKind::kWorld;
  RwkvEmbedderOptions embedder;
  std::string task, split, layers = "all";
  bool hf_index = false;
  uint64_t seed = 0;  // train-N subsets
  LayerAnalysisOptions options;
};
LayerAnalysis RunLayerAnalysis(const LayerAnalysisPlan& plan);

// {tool_version, command_line, model, ..., definitions, layers[], weights[]} (issue 9 layout).
nlohmann::json LayerAnalysisJson(const LayerAnalysis& a, const RunInfo& run);

// Markdown: one table each.
std::string LayerStatisticsTable(const LayerAnalysis& a);
std::string WeightSpectrumTable(const LayerAnalysis& a);  // per matrix type: mean over blocks
std::string LayerAnalysisCostTable(const std::vector<LayerAnalysis>& analyses);
// The whole "Beyond the study: layer analysis" section (definitions, caveats, tables, plots).
std::string LayerAnalysisSection(const std::vector<LayerAnalysis>& analyses,
                                 const std::vector<std::string>& plots);

// Plots into out_dir: <prefix>-entropy (prompt and dataset entropy, curvature per layer),
// <prefix>-geometry (anisotropy, centred anisotropy, effective rank), <prefix>-weights (log-log
// singular values per matrix type, a few blocks).
std::vector<PlotFiles> PlotLayerAnalysis(const std::vector<LayerAnalysis>& analyses,
                                         const std::filesystem::path& out_dir,
                                         const std::string& prefix);

// Writes OUT.json (when `json_path` is given), OUT_DIR/report.md, OUT_DIR/plots/; returns the
// files written, messages for plots not drawn.
std::vector<std::filesystem::path> WriteLayerAnalysis(const std::vector<LayerAnalysis>& analyses,
                                                      const RunInfo& run,
                                                      const std::filesystem::path& json_path,
                                                      const std::filesystem::path& out_dir,
                                                      std::vector<std::string>* messages);

// `reproduce --beyond`: the analysis of every model of `o` on each task's dev split (else its first
// scored split), with o's tokenizer, precision, batch size and layers. Writes
// OUT/analysis-<task>-<split>[-<model>].json and OUT/plots/analysis-*; returns the Markdown
// section for report.md.
std::string BeyondLayerAnalysis(const RunOptions& o, const RunInfo& run,
                                const std::filesystem::path& out_dir,
                                std::vector<std::filesystem::path>* written,
                                std::vector<std::string>* messages);

}  // namespace rwkv_embed::report
