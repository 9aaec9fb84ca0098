#include "eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "eval/resources.h"

namespace rwkv_embed::eval {
namespace {

using Clock = std::chrono::steady_clock;

// Identity of a pair across splits (the same pair read from two files compares equal).
std::string PairKey(const SentencePair& p) {
  std::string key;
  key.reserve(p.id.size() + p.sentence1.size() + p.sentence2.size() + 2);
  key.append(p.id).push_back('\x1f');
  key.append(p.sentence1).push_back('\x1f');
  key.append(p.sentence2);
  return key;
}

std::vector<double> LabelsOf(const PairDataset& d) {
  if (!d.has_labels) {
    throw DataError(d.source.string() + " (" + d.task + " " + d.split +
                    ") has no labels: it cannot be scored");
  }
  std::vector<double> labels;
  labels.reserve(d.pairs.size());
  for (const SentencePair& p : d.pairs) labels.push_back(p.label);
  return labels;
}

struct EmbeddedSplit {
  EmbedResult result;
  std::vector<std::pair<int, int>> pair_rows;
  int64_t n_sentences = 0;
  double seconds = 0;
};

// "sentence 7 of mrpc dev (sentence2 of pair 3, id 1234-5678, in FILE)".
std::string SentenceLabel(const PairDataset& d, const std::vector<std::pair<int, int>>& pair_rows,
                          int64_t sentence) {
  std::string label = "sentence " + std::to_string(sentence) + " of " + d.task + " " + d.split;
  for (size_t i = 0; i < pair_rows.size(); ++i) {
    if (pair_rows[i].first == sentence || pair_rows[i].second == sentence) {
      label += std::string(" (") + (pair_rows[i].first == sentence ? "sentence1" : "sentence2") +
               " of pair " + std::to_string(i) + ", id " + d.pairs[i].id + ", in " +
               d.source.string() + ")";
      break;
    }
  }
  return label;
}

EmbeddedSplit EmbedSplit(Embedder& embedder, const PairDataset& d, const EmbedRequest& request) {
  EmbeddedSplit e;
  const std::vector<std::string> sentences = UniqueSentences(d, &e.pair_rows);
  e.n_sentences = static_cast<int64_t>(sentences.size());
  const auto t0 = Clock::now();
  try {
    e.result = embedder.Embed(sentences, request);
    CheckEmbeddingsFinite(e.result, embedder.Name());  // whatever the embedder checks itself
  } catch (const NonFiniteEmbeddingError& error) {
    throw error.Renamed(error.sentence(), SentenceLabel(d, e.pair_rows, error.sentence()));
  }
  e.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (e.result.embeddings.size() != e.result.layers.size() ||
      e.result.empty.size() != sentences.size()) {
    throw ShapeError("embedder " + embedder.Name() + " returned " +
                     std::to_string(e.result.embeddings.size()) + " matrices for " +
                     std::to_string(e.result.layers.size()) + " layers and " +
                     std::to_string(e.result.empty.size()) + " empty flags for " +
                     std::to_string(sentences.size()) + " sentences");
  }
  for (const Matrix& m : e.result.embeddings) {
    if (m.rows() != e.n_sentences) {
      throw ShapeError("embedder " + embedder.Name() + " returned " + std::to_string(m.rows()) +
                       " rows for " + std::to_string(e.n_sentences) + " sentences");
    }
  }
  return e;
}

bool AllFinite(std::span<const float> v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

}  // namespace

const LayerResult* SplitResult::FindLayer(int layer) const {
  for (const LayerResult& l : layers) {
    if (l.layer == layer) return &l;
  }
  return nullptr;
}

const LayerInfo* MethodResult::FindLayerInfo(int layer) const {
  for (const LayerInfo& l : layer_info) {
    if (l.layer == layer) return &l;
  }
  return nullptr;
}

int MethodResult::LayerOfHfIndex(int hf_index) const {
  for (const LayerInfo& l : layer_info) {
    if (l.hf_index == hf_index) return l.layer;
  }
  return -1;
}

const SplitResult* MethodResult::FindSplit(const std::string& split) const {
  for (const SplitResult& s : splits) {
    if (s.split == split) return &s;
  }
  return nullptr;
}

PairCosines CosinesOf(const EmbedResult& embedded,
                      const std::vector<std::pair<int, int>>& pair_rows, double undefined_value) {
  PairCosines out;
  out.cosines.resize(embedded.layers.size());
  out.undefined.assign(embedded.layers.size(), 0);
  for (size_t l = 0; l < embedded.layers.size(); ++l) {
    const Matrix& m = embedded.embeddings[l];
    std::vector<double>& cos = out.cosines[l];
    cos.resize(pair_rows.size());
    for (size_t i = 0; i < pair_rows.size(); ++i) {
      const auto [a, b] = pair_rows[i];
      const double c = metrics::CosineSimilarity(m.RowSpan(a), m.RowSpan(b));
      if (std::isnan(c)) {
        // Zero vectors are the documented "nothing to embed" case; NaN/Inf inside a vector is a
        // defect upstream and must not be scored as anything.
        if (!AllFinite(m.RowSpan(a)) || !AllFinite(m.RowSpan(b))) {
          throw NumericError("non-finite embedding value in layer " +
                             std::to_string(embedded.layers[l]) + " for pair " + std::to_string(i) +
                             " (sentence rows " + std::to_string(a) + ", " + std::to_string(b) +
                             ")");
        }
        cos[i] = undefined_value;
        ++out.undefined[l];
      } else {
        cos[i] = c;
      }
    }
  }
  return out;
}

MethodResult EvaluateMethod(Embedder& embedder, const EvalInputs& inputs,
                            const EvalOptions& options) {
  if (inputs.splits.empty()) throw UsageError("nothing to evaluate: no split given");
  if (options.bootstrap < 0) throw UsageError("--bootstrap must be >= 0");
  if (!(options.level > 0 && options.level < 1)) {
    throw UsageError("confidence level must lie in (0, 1)");
  }
  if (!std::isfinite(options.undefined_cosine) || options.undefined_cosine < -1 ||
      options.undefined_cosine > 1) {
    throw UsageError("the value for undefined cosines must be a number in [-1, 1]");
  }
  if (inputs.fit && !options.subset_seeds.empty() &&
      (options.subset_size <= 0 ||
       static_cast<size_t>(options.subset_size) > inputs.fit->pairs.size())) {
    // Checked before any embedding work is done.
    throw UsageError("subset size " + std::to_string(options.subset_size) + " does not fit in " +
                     inputs.fit->split + " (" + std::to_string(inputs.fit->pairs.size()) +
                     " pairs); lower --subset-size or pass --subset-seeds none");
  }
  MethodResult out;
  out.method = embedder.Name();
  out.description = embedder.Description();
  out.layer_info = embedder.DescribeLayers();
  const metrics::ResampleOptions resample{options.bootstrap, options.seed, options.level};

  // The fitting split: embedded once, untimed for the per-split costs (it is the caller's
  // training data, not part of the measured workload).
  std::vector<double> fit_labels;
  PairCosines fit_cos;
  std::vector<int> fit_layers;
  std::unordered_map<std::string, size_t> fit_index;  // pair key -> position in fit
  if (inputs.fit) {
    fit_labels = LabelsOf(*inputs.fit);
    const EmbeddedSplit e = EmbedSplit(embedder, *inputs.fit, options.request);
    fit_cos = CosinesOf(e.result, e.pair_rows, options.undefined_cosine);
    fit_layers = e.result.layers;
    for (size_t i = 0; i < inputs.fit->pairs.size(); ++i) {
      fit_index.emplace(PairKey(inputs.fit->pairs[i]), i);
    }
  }

  for (const PairDataset& d : inputs.splits) {
    SplitResult s;
    s.task = d.task;
    s.split = d.split;
    s.source = d.source.string();
    s.subset_seed = d.subset_seed;
    s.n_pairs = static_cast<int64_t>(d.pairs.size());
    s.binary = d.binary;
    s.labels = LabelsOf(d);
    if (s.n_pairs < 2) {
      throw DataError(s.source + " (" + d.split + ") has " + std::to_string(s.n_pairs) +
                      " pairs; at least 2 are needed for a correlation");
    }
    const EmbeddedSplit e = EmbedSplit(embedder, d, options.request);
    s.n_sentences = e.n_sentences;
    s.embed_seconds = e.seconds;
    s.tokens = e.result.tokens;
    s.empty_sentences = std::count(e.result.empty.begin(), e.result.empty.end(), uint8_t{1});
    const PairCosines pc = CosinesOf(e.result, e.pair_rows, options.undefined_cosine);

    // Thresholds: fitted on the fitting split minus every pair that is also scored here.
    std::vector<char> fit_use;
    if (inputs.fit && s.binary && inputs.fit->binary) {
      fit_use.assign(inputs.fit->pairs.size(), 1);
      int64_t excluded = 0;
      for (const SentencePair& p : d.pairs) {
        const auto it = fit_index.find(PairKey(p));
        if (it != fit_index.end() && fit_use[it->second]) {
          fit_use[it->second] = 0;
          ++excluded;
        }
      }
      s.threshold_pairs = static_cast<int64_t>(fit_use.size()) - excluded;
      s.threshold_source = inputs.fit->task + " " + inputs.fit->split;
      if (excluded > 0) {
        s.threshold_source += " minus the " + std::to_string(excluded) + " pairs scored here";
      }
      s.threshold_source += " (" + std::to_string(s.threshold_pairs) + " pairs)";
      if (s.threshold_pairs < 2 || excluded == static_cast<int64_t>(fit_use.size())) {
        // Scoring the fitting split itself: no pair is left that is not scored here.
        s.threshold_source =
            "none: every pair of " + inputs.fit->task + " " + inputs.fit->split + " is scored here";
        s.threshold_pairs = 0;
        fit_use.clear();
      }
    }

    for (size_t li = 0; li < e.result.layers.size(); ++li) {
      LayerResult r;
      r.layer = e.result.layers[li];
      if (const LayerInfo* info = out.FindLayerInfo(r.layer)) {
        r.hf_layer = info->hf_index;
        r.no_hf_reason = info->no_hf_reason;
        r.label = info->label;
      } else {
        throw ShapeError("embedder " + embedder.Name() + " returned layer " +
                         std::to_string(r.layer) + ", which it does not describe");
      }
      r.cosines = pc.cosines[li];
      r.undefined_cosines = pc.undefined[li];
      r.spearman = metrics::Spearman(r.cosines, s.labels);
      r.pearson = metrics::Pearson(r.cosines, s.labels);
      if (options.bootstrap > 0) {
        r.spearman_ci = metrics::BootstrapCi(r.cosines, s.labels, metrics::Spearman, resample);
      } else {
        const double nan = std::nan("");
        r.spearman_ci = {r.spearman, nan, nan, options.level, 0, 0};
      }
      r.roc_auc = r.ap = std::nan("");
      if (s.binary) {
        r.roc_auc = metrics::RocAuc(r.cosines, s.labels);
        r.ap = metrics::AveragePrecision(r.cosines, s.labels);
        if (!fit_use.empty()) {
          const auto fl = std::find(fit_layers.begin(), fit_layers.end(), r.layer);
          if (fl == fit_layers.end()) {
            throw ShapeError("layer " + std::to_string(r.layer) +
                             " missing from the fitting split");
          }
          const std::vector<double>& fc = fit_cos.cosines[fl - fit_layers.begin()];
          std::vector<double> fs, fy;
          for (size_t i = 0; i < fc.size(); ++i) {
            if (!fit_use[i]) continue;
            fs.push_back(fc[i]);
            fy.push_back(fit_labels[i]);
          }
          const metrics::ThresholdFit fit =
              metrics::FitThreshold(fs, fy, metrics::ThresholdObjective::kAccuracy);
          r.threshold_fit_accuracy = fit.objective;
          r.classification = metrics::ClassificationAt(r.cosines, s.labels, fit.threshold);
        }
      }
      s.layers.push_back(std::move(r));
    }
    s.peak_rss_kib = PeakRssKib();
    out.splits.push_back(std::move(s));
  }

  // Spread over seeded subsets of the fitting split (the study's "1000 random" train pairs).
  if (inputs.fit && !options.subset_seeds.empty()) {
    const size_t k = static_cast<size_t>(options.subset_size);
    if (options.subset_size <= 0 || k > inputs.fit->pairs.size()) {
      throw UsageError("subset size " + std::to_string(options.subset_size) + " does not fit in " +
                       inputs.fit->split + " (" + std::to_string(inputs.fit->pairs.size()) +
                       " pairs)");
    }
    out.spread_split = inputs.fit->split + "-" + std::to_string(k);
    for (size_t li = 0; li < fit_layers.size(); ++li) {
      SubsetSpread sp;
      sp.layer = fit_layers[li];
      out.spread.push_back(sp);
    }
    for (uint64_t seed : options.subset_seeds) {
      const PairDataset subset = SubsetPairs(*inputs.fit, k, seed);
      std::vector<size_t> rows;
      std::vector<double> labels;
      rows.reserve(k);
      for (const SentencePair& p : subset.pairs) {
        rows.push_back(fit_index.at(PairKey(p)));
        labels.push_back(p.label);
      }
      for (size_t li = 0; li < fit_layers.size(); ++li) {
        std::vector<double> cos;
        cos.reserve(k);
        for (size_t r : rows) cos.push_back(fit_cos.cosines[li][r]);
        out.spread[li].seeds.push_back(seed);
        out.spread[li].spearman.push_back(metrics::Spearman(cos, labels));
      }
    }
    for (SubsetSpread& sp : out.spread) {
      std::vector<double> defined;
      for (double v : sp.spearman) {
        if (std::isfinite(v)) defined.push_back(v);
      }
      if (!defined.empty()) sp.summary = metrics::Summarize(defined);
    }
  }
  out.peak_rss_kib = PeakRssKib();
  return out;
}

Comparison CompareLayers(const MethodResult& a, int layer_a, const MethodResult& b, int layer_b,
                         const std::string& split, const std::string& kind,
                         const metrics::ResampleOptions& options) {
  const SplitResult* sa = a.FindSplit(split);
  const SplitResult* sb = b.FindSplit(split);
  if (sa == nullptr || sb == nullptr) {
    throw UsageError("split " + split + " is missing from " + (sa ? b.method : a.method));
  }
  const LayerResult* la = sa->FindLayer(layer_a);
  const LayerResult* lb = sb->FindLayer(layer_b);
  if (la == nullptr || lb == nullptr) {
    throw UsageError("layer " + std::to_string(la ? layer_b : layer_a) + " is missing from " +
                     (la ? b.method : a.method) + " on " + split);
  }
  if (sa->labels != sb->labels) {
    throw DataError(a.method + " and " + b.method + " were scored on different pairs of " + split);
  }
  Comparison c;
  c.split = split;
  c.kind = kind;
  c.method_a = a.method;
  c.method_b = b.method;
  c.layer_a = layer_a;
  c.layer_b = layer_b;
  c.test =
      metrics::PairedBootstrap(la->cosines, lb->cosines, sa->labels, metrics::Spearman, options);
  return c;
}

std::vector<Comparison> StandardComparisons(const MethodResult& model,
                                            const std::vector<const MethodResult*>& baselines,
                                            const MethodResult* random_control,
                                            const metrics::ResampleOptions& options) {
  struct Job {
    const MethodResult* a;
    int la;
    const MethodResult* b;
    int lb;
    std::string split, kind;
  };
  std::vector<Job> jobs;
  for (const SplitResult& s : model.splits) {
    int best = -1;
    double best_rho = -2;
    for (const LayerResult& l : s.layers) {
      if (std::isfinite(l.spearman) && l.spearman > best_rho) {
        best_rho = l.spearman;
        best = l.layer;
      }
    }
    for (size_t i = 0; i < s.layers.size(); ++i) {
      const int layer = s.layers[i].layer;
      for (const MethodResult* base : baselines) {
        if (base->FindSplit(s.split) != nullptr) {
          jobs.push_back({&model, layer, base, 0, s.split, "vs_baseline"});
        }
      }
      if (i + 1 < s.layers.size()) {
        jobs.push_back({&model, layer, &model, s.layers[i + 1].layer, s.split, "adjacent"});
      }
      if (best >= 0 && layer != best) {
        jobs.push_back({&model, layer, &model, best, s.split, "vs_best"});
      }
      if (random_control != nullptr) {
        const SplitResult* rs = random_control->FindSplit(s.split);
        if (rs != nullptr && rs->FindLayer(layer) != nullptr) {
          jobs.push_back({&model, layer, random_control, layer, s.split, "vs_random"});
        }
      }
    }
  }
  if (options.resamples <= 0) return {};
  std::vector<Comparison> out(jobs.size());
  std::vector<std::exception_ptr> errors(jobs.size());
  // Independent resampling jobs (each seeded identically, so the order of execution is
  // irrelevant to the results). Exceptions must not cross the OpenMP region: kept and rethrown.
#pragma omp parallel for schedule(dynamic)
  for (int64_t j = 0; j < static_cast<int64_t>(jobs.size()); ++j) {
    const Job& job = jobs[j];
    try {
      out[j] = CompareLayers(*job.a, job.la, *job.b, job.lb, job.split, job.kind, options);
    } catch (...) {
      errors[j] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return out;
}

}  // namespace rwkv_embed::eval
