// The evaluator: any Embedder, any pair dataset, every requested layer from one Embed call.
//
// Protocol (the study's §3-4, "Exploring RWKV for Sentence Embeddings", made explicit):
// - each distinct sentence of a split is embedded once (UniqueSentences); every layer comes from
// the
//   same call, so RWKV runs one forward pass per split;
// - the score of a pair is the cosine of its two sentence vectors. A sentence with nothing to embed
//   (no known word under GloVe, no token) has a zero vector and an undefined cosine: such pairs are
//   counted per layer (LayerResult::undefined_cosines) and scored EvalOptions::undefined_cosine
//   (default 0, "no evidence of similarity") on purpose, never silently;
// - cosine_spearman (tie-aware: binary labels are all ties) is the main score, as in the study;
//   cosine_pearson always; for binary labels also ROC-AUC, average precision, and
//   accuracy/F1/precision/recall at a threshold fitted (max accuracy) on a *different* split — the
//   fitting split minus every pair of the scored split — never on the split being scored;
// - percentile-bootstrap CIs (seeded, PortableRng) for Spearman;
// - the spread of Spearman over several seeded train-N subsets (the study drew one 1000-pair
//   subset; how much does that draw matter?).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/embedder.h"
#include "data/pairs.h"
#include "metrics/metrics.h"
#include "metrics/resampling.h"

namespace rwkv_embed::eval {

struct EvalOptions {
  EmbedRequest request;      // layers (embedder numbering; empty = all), pooling, normalization
  int64_t bootstrap = 1000;  // resamples for CIs and paired tests; 0 disables them
  uint64_t seed = 0;         // bootstrap seed
  double level = 0.95;
  double undefined_cosine = 0.0;       // score given to a pair whose cosine is undefined
  std::vector<uint64_t> subset_seeds;  // spread over SubsetPairs(fit, subset_size, seed)
  int64_t subset_size = 1000;
};

struct EvalInputs {
  std::vector<PairDataset> splits;  // the scored splits
  // The split thresholds are fitted on and subsets are drawn from (the task's train split), or
  // nothing: then no threshold metrics and no subset spread.
  std::optional<PairDataset> fit;
};

struct LayerResult {
  int layer = 0;
  // Identity from Embedder::DescribeLayers(): HF hidden_states index where HF has the layer
  // (else why not), and a label ("block 3", "after ln_out", "glove").
  std::optional<int> hf_layer;
  std::string no_hf_reason;
  std::string label;
  std::vector<double> cosines;  // per pair; undefined ones replaced by undefined_cosine
  int64_t undefined_cosines = 0;
  double spearman = 0, pearson = 0;
  metrics::ConfidenceInterval spearman_ci;
  // Binary labels only (NaN otherwise).
  double roc_auc = 0, ap = 0;
  std::optional<metrics::Classification> classification;  // at the fitted threshold
  double threshold_fit_accuracy = 0;                      // accuracy reached on the fitting pairs
};

struct SplitResult {
  std::string task, split;
  std::string source;
  std::optional<uint64_t> subset_seed;
  int64_t n_pairs = 0, n_sentences = 0;  // n_sentences: distinct sentences embedded
  int64_t empty_sentences = 0;           // sentences with a zero vector (nothing to embed)
  int64_t tokens = 0;                    // tokens (RWKV) or words (baselines) processed
  double embed_seconds = 0;              // wall time of the Embed call for this split
  int64_t peak_rss_kib = -1;             // VmHWM after embedding and scoring this split
  bool binary = false;
  std::vector<double> labels;
  // Where the thresholds came from, e.g. "train minus the 1000 scored pairs (2668 pairs)".
  std::string threshold_source;
  int64_t threshold_pairs = 0;
  std::vector<LayerResult> layers;

  double SecondsPerPair() const { return n_pairs ? embed_seconds / n_pairs : 0; }
  double SecondsPerSentence() const { return n_sentences ? embed_seconds / n_sentences : 0; }
  double TokensPerSecond() const { return embed_seconds > 0 ? tokens / embed_seconds : 0; }
  const LayerResult* FindLayer(int layer) const;
};

struct SubsetSpread {
  int layer = 0;
  std::vector<uint64_t> seeds;
  std::vector<double> spearman;  // one per seed
  metrics::Summary summary;
};

struct MethodResult {
  std::string method;       // Embedder::Name(): "rwkv", "glove", "sif", "random-control"
  std::string description;  // Embedder::Description() plus the caller's notes
  // Every layer the embedder has (Embedder::DescribeLayers()), whether scored or not.
  std::vector<LayerInfo> layer_info;
  // The model a control (random weights of the same shape) stands beside; "" for others.
  std::string control_of;
  // A pooling method beyond the mean (methods/method_spec.h): the model method it pools ("rwkv"),
  // what it was fitted on ("" = nothing fitted), and, for attention pooling, token weights of a
  // few scored sentences at its best layer (the report shows them).
  std::string pooling_of, fitted_on;
  struct TokenWeights {
    int layer = 0;
    std::vector<std::string> tokens;
    std::vector<double> weights;
  };
  std::vector<TokenWeights> token_weights;
  double load_seconds = 0;  // set by the caller that loaded the embedder
  int64_t peak_rss_kib = -1;
  bool peak_rss_isolated = false;  // VmHWM was reset before this method (ResetPeakRss)
  std::vector<SplitResult> splits;
  std::string spread_split;  // e.g. "train-1000" over subset seeds
  std::vector<SubsetSpread> spread;

  const SplitResult* FindSplit(const std::string& split) const;
  // A model with layers (RWKV) rather than a one-layer baseline.
  bool layered() const { return layer_info.size() > 1; }
  const LayerInfo* FindLayerInfo(int layer) const;
  // Our layer whose HF hidden_states index is `hf_index`, or -1.
  int LayerOfHfIndex(int hf_index) const;
};

// Embeds and scores every split with `embedder` (see the file comment). Throws UsageError for bad
// options, DataError for unlabelled splits.
MethodResult EvaluateMethod(Embedder& embedder, const EvalInputs& inputs,
                            const EvalOptions& options);

// Cosine of every pair from one Embed result: cosines[layer][pair]; undefined cosines (a zero or
// non-finite vector) become `undefined_value` and are counted in undefined[layer].
struct PairCosines {
  std::vector<std::vector<double>> cosines;
  std::vector<int64_t> undefined;
};
PairCosines CosinesOf(const EmbedResult& embedded,
                      const std::vector<std::pair<int, int>>& pair_rows, double undefined_value);

// A paired comparison of two (method, layer) systems on the same pairs of one split:
// metric = Spearman; paired bootstrap of the difference A - B.
struct Comparison {
  std::string split, kind;  // kind: "vs_baseline", "adjacent", "vs_best", "vs_random"
  std::string method_a, method_b;
  int layer_a = 0, layer_b = 0;
  metrics::PairedTest test;
};
Comparison CompareLayers(const MethodResult& a, int layer_a, const MethodResult& b, int layer_b,
                         const std::string& split, const std::string& kind,
                         const metrics::ResampleOptions& options);

// The study's comparisons for every split of `model`: each layer vs each baseline's layer 0,
// adjacent layers, each layer vs the best layer of that split (chosen on the same split: a
// descriptive, not a confirmatory, test), and layer k vs the same layer of `random_control`.
std::vector<Comparison> StandardComparisons(const MethodResult& model,
                                            const std::vector<const MethodResult*>& baselines,
                                            const MethodResult* random_control,
                                            const metrics::ResampleOptions& options);

}  // namespace rwkv_embed::eval
