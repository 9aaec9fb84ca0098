#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "report/pooling_report.h"

namespace rwkv_embed::report {
namespace {

using nlohmann::json;

std::string Fixed(double v, int digits = 4) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string Sci(double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof(buf), v != 0 && std::fabs(v) < 1e-3 ? "%.2e" : "%.4f", v);
  return buf;
}

std::string WithCi(double v, const metrics::ConfidenceInterval& ci) {
  if (!std::isfinite(v)) return "n/a";
  if (!std::isfinite(ci.lo) || !std::isfinite(ci.hi)) return Fixed(v);
  return Fixed(v) + " [" + Fixed(ci.lo, 3) + ", " + Fixed(ci.hi, 3) + "]";
}

std::string Mib(int64_t kib) { return kib < 0 ? "n/a" : Fixed(kib / 1024.0, 1); }

// Markdown cells must not contain '|' or newlines.
std::string Cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// A field that is a number or null; a null records why in `reasons`.
void Put(json& obj, json& reasons, const std::string& key, double v, const std::string& why) {
  obj[key] = Number(v);
  if (!std::isfinite(v)) reasons[key] = why;
}

std::string LayerName(const eval::MethodResult& m, const eval::LayerResult& l) {
  if (!m.layered()) return m.method;
  std::string s = m.method + " layer " + std::to_string(l.layer);
  if (l.hf_layer) s += " (HF " + std::to_string(*l.hf_layer) + ")";
  return s;
}

// "3 (HF 2)": a layer of a layered method, as its embedder numbers it.
std::string LayerWithHf(const eval::MethodResult& m, int layer) {
  std::string s = std::to_string(layer);
  const LayerInfo* info = m.FindLayerInfo(layer);
  if (info != nullptr && info->hf_index) s += " (HF " + std::to_string(*info->hf_index) + ")";
  return s;
}

std::string SystemName(const TaskResults& t, const std::string& method, int layer) {
  const eval::MethodResult* m = t.FindMethod(method);
  if (m == nullptr || !m->layered()) return method;
  return method + " " + LayerWithHf(*m, layer);
}

// The evaluated models (layered methods that are not controls), in run order.
std::vector<const eval::MethodResult*> Models(const TaskResults& t) {
  std::vector<const eval::MethodResult*> out;
  for (const eval::MethodResult& m : t.methods) {
    if (m.layered() && m.control_of.empty() && m.pooling_of.empty()) out.push_back(&m);
  }
  return out;
}

// "RWKV" for the single model of a run (method "rwkv", or none), else the method name.
std::string DisplayName(const eval::MethodResult* m) {
  return m == nullptr || m->method == "rwkv" ? "RWKV" : m->method;
}

// The largest HF hidden_states index of a model: its number of blocks, for RWKV-6 and RWKV-7.
int MaxHfIndex(const eval::MethodResult& m) {
  int max = -1;
  for (const LayerInfo& l : m.layer_info) {
    if (l.hf_index) max = std::max(max, *l.hf_index);
  }
  return max;
}

// A study table's rows with ours beside them: each RWKV row once per model (or once, empty,
// when there is none), the GloVe row with the GloVe method.
template <size_t N>
std::vector<std::pair<PublishedRow, const eval::MethodResult*>> RowsPerModel(
    const PublishedRow (&rows)[N], const std::vector<const eval::MethodResult*>& models,
    const eval::MethodResult* glove) {
  std::vector<std::pair<PublishedRow, const eval::MethodResult*>> out;
  for (const PublishedRow& row : rows) {
    if (row.hf_layer < 0) {
      out.push_back({row, glove});
    } else if (models.empty()) {
      out.push_back({row, nullptr});
    } else {
      for (const eval::MethodResult* m : models) out.push_back({row, m});
    }
  }
  return out;
}

}  // namespace

const eval::MethodResult* TaskResults::FindMethod(const std::string& method) const {
  for (const eval::MethodResult& m : methods) {
    if (m.method == method) return &m;
  }
  return nullptr;
}

json Number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

bool HasNonFinite(const json& j) {
  if (j.is_number_float()) return !std::isfinite(j.get<double>());
  if (j.is_structured()) {
    for (const auto& item : j) {
      if (HasNonFinite(item)) return true;
    }
  }
  return false;
}

json ScoreObject(const eval::MethodResult& method, const eval::SplitResult& split,
                 const eval::LayerResult& layer, double undefined_cosine_value) {
  json o;
  json reasons = json::object();
  const std::string constant_why =
      "undefined: the cosines or the labels are constant on this split";
  Put(o, reasons, "main_score", layer.spearman, constant_why);
  o["main_score_metric"] = "cosine_spearman";
  Put(o, reasons, "cosine_spearman", layer.spearman, constant_why);
  Put(o, reasons, "cosine_pearson", layer.pearson, constant_why);
  const metrics::ConfidenceInterval& ci = layer.spearman_ci;
  json cij;
  const std::string ci_why = ci.resamples == 0 ? "bootstrap disabled (--bootstrap 0)"
                                               : "undefined on every resample or on the sample";
  Put(cij, reasons, "lo", ci.lo, ci_why);
  Put(cij, reasons, "hi", ci.hi, ci_why);
  if (reasons.contains("lo")) {
    reasons["cosine_spearman_ci"] = reasons["lo"];
    reasons.erase("lo");
    reasons.erase("hi");
  }
  cij["level"] = ci.level;
  cij["resamples"] = ci.resamples;
  cij["undefined_resamples"] = ci.undefined;
  cij["method"] = "percentile bootstrap over pairs";
  o["cosine_spearman_ci"] = cij;
  if (split.binary) {
    Put(o, reasons, "roc_auc", layer.roc_auc, "undefined: only one label class on this split");
    Put(o, reasons, "ap", layer.ap, "undefined: no positive label on this split");
    const std::string no_fit = split.threshold_source.empty()
                                   ? "no threshold: no fitting split was given (--fit-split none)"
                                   : "no threshold: " + split.threshold_source;
    if (layer.classification) {
      const metrics::Classification& c = *layer.classification;
      o["accuracy"] = c.accuracy;
      o["f1"] = c.f1;
      o["precision"] = c.precision;
      o["recall"] = c.recall;
      o["threshold"] = c.threshold;
      o["threshold_split"] = split.threshold_source;
      o["threshold_objective"] = "accuracy";
      o["threshold_fit_accuracy"] = layer.threshold_fit_accuracy;
      o["confusion"] = {{"tp", c.tp}, {"fp", c.fp}, {"tn", c.tn}, {"fn", c.fn}};
    } else {
      for (const char* k : {"accuracy", "f1", "precision", "recall", "threshold"}) {
        o[k] = nullptr;
        reasons[k] = no_fit;
      }
      o["threshold_split"] = nullptr;
      reasons["threshold_split"] = no_fit;
    }
  }
  o["method"] = method.method;
  o["layer"] = layer.layer;
  if (layer.hf_layer) {
    o["hf_layer"] = *layer.hf_layer;
  } else {
    o["hf_layer"] = nullptr;
    reasons["hf_layer"] = layer.no_hf_reason.empty()
                              ? "the embedder " + method.method + " has no HF index for this layer"
                              : layer.no_hf_reason;
  }
  o["layer_label"] = layer.label;
  o["split"] = split.split;
  o["n_pairs"] = split.n_pairs;
  o["n_sentences"] = split.n_sentences;
  o["empty_sentences"] = split.empty_sentences;
  o["undefined_cosines"] = layer.undefined_cosines;
  o["undefined_cosine_value"] = undefined_cosine_value;
  o["null_reasons"] = reasons;
  return o;
}

json TaskJson(const TaskResults& task, const RunInfo& run) {
  json j;
  j["task_name"] = task.task;
  j["tool"] = "rwkv-embed";
  j["tool_version"] = run.tool_version;
  j["model_name"] = run.model_name;
  j["command_line"] = run.command_line;
  j["started_at"] = run.started_at;
  j["evaluation_time"] = run.evaluation_seconds;
  j["settings"] = run.settings;
  j["notes"] = run.notes;
  if (!run.mpi.is_null()) j["mpi"] = run.mpi;
  const double undefined_value =
      run.settings.contains("undefined_cosine") && run.settings["undefined_cosine"].is_number()
          ? run.settings["undefined_cosine"].get<double>()
          : 0.0;
  json scores = json::object();
  json methods = json::array();
  json costs = json::array();
  json spreads = json::array();
  for (const eval::MethodResult& m : task.methods) {
    json layers = json::array();
    for (const LayerInfo& l : m.layer_info) {
      layers.push_back({{"layer", l.layer},
                        {"label", l.label},
                        {"hf_layer", l.hf_index ? json(*l.hf_index) : json(nullptr)}});
    }
    methods.push_back({{"method", m.method},
                       {"description", m.description},
                       {"layers", layers},
                       {"control_of", m.control_of.empty() ? json(nullptr) : json(m.control_of)}});
    if (!m.pooling_of.empty()) AddPoolingMethodJson(m, &methods.back());
    json cost;
    cost["method"] = m.method;
    cost["load_seconds"] = m.load_seconds;
    cost["peak_rss_mib"] = m.peak_rss_kib < 0 ? json(nullptr) : json(m.peak_rss_kib / 1024.0);
    cost["peak_rss_isolated"] = m.peak_rss_isolated;
    json per_split = json::array();
    for (const eval::SplitResult& s : m.splits) {
      if (!scores.contains(s.split)) scores[s.split] = json::array();
      for (const eval::LayerResult& l : s.layers) {
        scores[s.split].push_back(ScoreObject(m, s, l, undefined_value));
      }
      per_split.push_back(
          {{"split", s.split},
           {"source", s.source},
           {"n_pairs", s.n_pairs},
           {"n_sentences", s.n_sentences},
           {"tokens", s.tokens},
           {"embed_seconds", s.embed_seconds},
           {"seconds_per_pair", s.SecondsPerPair()},
           {"seconds_per_sentence", s.SecondsPerSentence()},
           {"tokens_per_second", s.TokensPerSecond()},
           {"peak_rss_mib", s.peak_rss_kib < 0 ? json(nullptr) : json(s.peak_rss_kib / 1024.0)}});
    }
    cost["splits"] = per_split;
    costs.push_back(cost);
    for (const eval::SubsetSpread& sp : m.spread) {
      json sj;
      sj["method"] = m.method;
      sj["layer"] = sp.layer;
      const LayerInfo* info = m.FindLayerInfo(sp.layer);
      sj["hf_layer"] = info != nullptr && info->hf_index ? json(*info->hf_index) : json(nullptr);
      sj["layer_label"] = info != nullptr ? json(info->label) : json(nullptr);
      sj["split"] = m.spread_split;
      sj["seeds"] = sp.seeds;
      json values = json::array();
      for (double v : sp.spearman) values.push_back(Number(v));
      sj["cosine_spearman"] = values;
      sj["mean"] = Number(sp.summary.n ? sp.summary.mean : std::nan(""));
      sj["sd"] = Number(sp.summary.n ? sp.summary.sd : std::nan(""));
      sj["min"] = Number(sp.summary.n ? sp.summary.min : std::nan(""));
      sj["max"] = Number(sp.summary.n ? sp.summary.max : std::nan(""));
      sj["sd_null_reason"] = "sd is null with fewer than 2 seeds (sample sd, ddof 1)";
      spreads.push_back(sj);
    }
  }
  j["methods"] = methods;
  j["scores"] = scores;
  json comps = json::array();
  for (const eval::Comparison& c : task.comparisons) {
    comps.push_back({{"split", c.split},
                     {"kind", c.kind},
                     {"metric", "cosine_spearman"},
                     {"test", "paired bootstrap (difference A - B)"},
                     {"method_a", c.method_a},
                     {"layer_a", c.layer_a},
                     {"method_b", c.method_b},
                     {"layer_b", c.layer_b},
                     {"estimate_a", Number(c.test.estimate_a)},
                     {"estimate_b", Number(c.test.estimate_b)},
                     {"difference", Number(c.test.difference)},
                     {"lo", Number(c.test.lo)},
                     {"hi", Number(c.test.hi)},
                     {"p_value", Number(c.test.p_value)},
                     {"resamples", c.test.resamples},
                     {"undefined_resamples", c.test.undefined}});
  }
  j["comparisons"] = comps;
  j["subset_spread"] = spreads;
  j["costs"] = costs;
  return j;
}

void WriteText(const std::string& text, const std::filesystem::path& path) {
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec)
      throw IoError("cannot create folder " + path.parent_path().string() + ": " + ec.message());
  }
  WriteFileAtomically(path, text);  // <path>.partial, renamed when complete
}

void WriteJson(const json& j, const std::filesystem::path& path) {
  if (HasNonFinite(j)) {
    throw NumericError("refusing to write " + path.string() + ": it would contain NaN or Inf");
  }
  // Invalid UTF-8 (a path given on the command line) is replaced, never a json::type_error.
  WriteText(j.dump(2, ' ', false, json::error_handler_t::replace) + "\n", path);
}

std::string QualitativeTable(const TaskResults& task, const std::string& split, size_t n,
                             const std::vector<int>& hf_layers) {
  const PairDataset* data = nullptr;
  for (const PairDataset& d : task.samples) {
    if (d.split == split) data = &d;
  }
  if (data == nullptr) return "";
  struct Column {
    std::string name;
    const eval::LayerResult* layer;
  };
  std::vector<Column> cols;
  for (const eval::MethodResult& m : task.methods) {
    const eval::SplitResult* s = m.FindSplit(split);
    if (s == nullptr) continue;
    for (const eval::LayerResult& l : s->layers) {
      if (m.layered() && (!l.hf_layer || std::find(hf_layers.begin(), hf_layers.end(),
                                                   *l.hf_layer) == hf_layers.end())) {
        continue;
      }
      cols.push_back({LayerName(m, l), &l});
    }
  }
  std::ostringstream md;
  md << "| # | sentence 1 | sentence 2 | label |";
  for (const Column& c : cols) md << " " << Cell(c.name) << " |";
  md << "\n|---|---|---|---|";
  for (size_t i = 0; i < cols.size(); ++i) md << "---|";
  md << "\n";
  for (size_t i = 0; i < std::min(n, data->pairs.size()); ++i) {
    const SentencePair& p = data->pairs[i];
    md << "| " << i + 1 << " | " << Cell(p.sentence1) << " | " << Cell(p.sentence2) << " | "
       << Fixed(p.label, data->binary ? 0 : 2) << " |";
    for (const Column& c : cols) md << " " << Fixed(c.layer->cosines[i]) << " |";
    md << "\n";
  }
  return md.str();
}

std::string MarkdownReport(const std::vector<TaskResults>& tasks, const RunInfo& run,
                           const std::vector<std::string>& plots) {
  std::ostringstream md;
  md << "# rwkv-embed: layer-wise RWKV vs. GloVe on sentence similarity\n\n";
  md << "Reproduction of \"Exploring RWKV for Sentence Embeddings: Layer-wise Analysis and "
        "Baseline Comparison for Semantic Similarity\" (§3-4, Tables 1-3, appendix sample "
        "pairs), extended with confidence intervals, paired tests, threshold metrics and the "
        "spread over training subsets.\n\n";
  for (const std::string& note : run.notes) md << "- **" << note << "**\n";
  md << "\n| | |\n|---|---|\n";
  md << "| tool | rwkv-embed " << run.tool_version << " |\n";
  md << "| command | `" << Cell(run.command_line) << "` |\n";
  md << "| started (UTC) | " << run.started_at << " |\n";
  md << "| evaluation time | " << Fixed(run.evaluation_seconds, 1) << " s |\n";
  for (const auto& [k, v] : run.settings.items()) {
    md << "| " << k << " | "
       << Cell(v.is_string() ? v.get<std::string>()
                             : v.dump(-1, ' ', false, json::error_handler_t::replace))
       << " |\n";
  }
  md << "\n";

  const TaskResults* mrpc = nullptr;
  for (const TaskResults& t : tasks) {
    if (t.task == "mrpc") mrpc = &t;
  }
  if (mrpc != nullptr) {
    // The scored train subset ("train-1000" in the study's protocol; smaller in quick runs).
    std::string train = "train-1000";
    for (const PairDataset& d : mrpc->samples) {
      if (d.split.rfind("train", 0) == 0) train = d.split;
    }
    const std::vector<const eval::MethodResult*> models = Models(*mrpc);
    const eval::MethodResult* glove = mrpc->FindMethod("glove");
    const eval::SplitResult* gtr = glove ? glove->FindSplit(train) : nullptr;
    const eval::SplitResult* gdv = glove ? glove->FindSplit("dev") : nullptr;
    md << "## Table 1 — Spearman (cosine vs. label), MRPC: study vs. this run\n\n";
    md << "Study: RWKV-6 Finch 1.6B, GloVe 6B **50d**. This run: the model(s) and vectors named "
          "above. Layers are the study's HF `hidden_states` indices, each model's own (RWKV-6: "
          "ours = HF + 1; RWKV-7: ours = HF, see the layer labels in the sweep). "
          "Brackets: 95% percentile-bootstrap CI.\n\n";
    md << "| Model / layer | study train (1000 random) | this run " << train
       << " | study validation (408) | this run dev |\n|---|---|---|---|---|\n";
    std::vector<std::pair<const eval::MethodResult*, std::vector<int>>> missing;
    for (const PublishedRow& row : kStudySpearman) {
      if (row.hf_layer >= 0) {
        for (const eval::MethodResult* m : models) {
          const eval::SplitResult* rtr = m->FindSplit(train);
          const eval::SplitResult* rdv = m->FindSplit("dev");
          const int ours = m->LayerOfHfIndex(row.hf_layer);
          std::string ours_tr = "—", ours_dv = "—";
          const eval::LayerResult* a = rtr && ours >= 0 ? rtr->FindLayer(ours) : nullptr;
          const eval::LayerResult* b = rdv && ours >= 0 ? rdv->FindLayer(ours) : nullptr;
          if (a) ours_tr = WithCi(a->spearman, a->spearman_ci);
          if (b) ours_dv = WithCi(b->spearman, b->spearman_ci);
          if (ours < 0) {
            ours_tr = ours_dv =
                "— (no such layer: model has " + std::to_string(MaxHfIndex(*m)) + " blocks)";
            auto it = std::find_if(missing.begin(), missing.end(),
                                   [m](const auto& entry) { return entry.first == m; });
            if (it == missing.end()) it = missing.insert(missing.end(), {m, {}});
            it->second.push_back(row.hf_layer);
          }
          md << "| " << DisplayName(m) << " HF layer " << row.hf_layer
             << (ours >= 0 ? " (ours " + std::to_string(ours) + ")" : std::string()) << " | "
             << Fixed(row.train) << " | " << ours_tr << " | " << Fixed(row.validation) << " | "
             << ours_dv << " |\n";
        }
      } else {
        std::string ours_tr = "—", ours_dv = "—";
        const eval::LayerResult* a = gtr ? gtr->FindLayer(0) : nullptr;
        const eval::LayerResult* b = gdv ? gdv->FindLayer(0) : nullptr;
        if (a) ours_tr = WithCi(a->spearman, a->spearman_ci);
        if (b) ours_dv = WithCi(b->spearman, b->spearman_ci);
        md << "| GloVe baseline | " << Fixed(row.train) << " | " << ours_tr << " | "
           << Fixed(row.validation) << " | " << ours_dv << " |\n";
      }
    }
    for (const auto& [m, hs] : missing) {
      md << "\n"
         << DisplayName(m) << " has only " << MaxHfIndex(*m) << " blocks (HF indices 0.."
         << MaxHfIndex(*m) << "), so the study's HF layers";
      for (int h : hs) md << " " << h;
      md << " do not exist in it; every layer it has is in the full sweep below.\n";
    }
    md << "\n## Table 2 — average time per sentence pair (seconds)\n\n";
    md << "Study: Tesla T4 GPU, per pair, RWKV \"last layer\". This run: CPU wall time of "
          "embedding the split's distinct sentences (one forward pass gives every layer), "
          "divided by its pairs; model/vector load time separately.\n\n";
    md << "| Method | study train | this run " << train
       << " | study validation | this run dev | s / sentence (dev) | tokens/s (dev) | load time "
          "(s) |\n|---|---|---|---|---|---|---|---|\n";
    for (const auto& [row, m] : RowsPerModel(kStudySecondsPerPair, models, glove)) {
      const eval::SplitResult* tr = m ? m->FindSplit(train) : nullptr;
      const eval::SplitResult* dv = m ? m->FindSplit("dev") : nullptr;
      md << "| "
         << (row.hf_layer >= 0 ? DisplayName(m) + " (all layers, one pass)" : "GloVe baseline")
         << " | " << Fixed(row.train) << " | " << (tr ? Sci(tr->SecondsPerPair()) : "—") << " | "
         << Fixed(row.validation) << " | " << (dv ? Sci(dv->SecondsPerPair()) : "—") << " | "
         << (dv ? Sci(dv->SecondsPerSentence()) : "—") << " | "
         << (dv ? Fixed(dv->TokensPerSecond(), 0) : "—") << " | "
         << (m ? Fixed(m->load_seconds, 3) : "—") << " |\n";
    }
    md << "\n## Table 3 — peak memory (MB)\n\n";
    md << "Study: peak GPU memory with the RWKV model resident for both rows. This run: peak "
          "resident set (VmHWM, MiB) of the process, reset before each method so that GloVe "
          "is measured without the RWKV model loaded (\"isolated\").\n\n";
    md << "| Method | study train | this run " << train
       << " | study validation | this run dev | isolated |\n|---|---|---|---|---|---|\n";
    for (const auto& [row, m] : RowsPerModel(kStudyPeakGpuMb, models, glove)) {
      const eval::SplitResult* tr = m ? m->FindSplit(train) : nullptr;
      const eval::SplitResult* dv = m ? m->FindSplit("dev") : nullptr;
      md << "| " << (row.hf_layer >= 0 ? DisplayName(m) : "GloVe baseline") << " | "
         << Fixed(row.train, 2) << " | " << (tr ? Mib(tr->peak_rss_kib) : "—") << " | "
         << Fixed(row.validation, 2) << " | " << (dv ? Mib(dv->peak_rss_kib) : "—") << " | "
         << (m ? (m->peak_rss_isolated ? "yes" : "no") : "—") << " |\n";
    }
    md << "\n";
  }

  for (const TaskResults& t : tasks) {
    md << "## " << t.task << ": every method and layer\n\n";
    md << "Spearman and Pearson of the cosine against the label, 95% bootstrap CI. ";
    md << "Binary labels: ROC-AUC, AP, and accuracy / F1 at the threshold fitted (max accuracy) "
          "on the split named in the last column, never on the scored split. \"undef.\" counts "
          "pairs with an undefined cosine (a zero vector), scored as the value in the "
          "settings.\n\n";
    md << "| method | layer | HF | split | pairs | Spearman [CI] | Pearson | ROC-AUC | AP | acc | "
          "F1 "
          "| threshold | undef. | threshold fitted on |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const eval::MethodResult& m : t.methods) {
      for (const eval::SplitResult& s : m.splits) {
        for (const eval::LayerResult& l : s.layers) {
          const auto& c = l.classification;
          md << "| " << m.method << " | " << l.layer << " | "
             << (l.hf_layer ? std::to_string(*l.hf_layer) : "—") << " | " << s.split << " | "
             << s.n_pairs << " | " << WithCi(l.spearman, l.spearman_ci) << " | " << Fixed(l.pearson)
             << " | " << (s.binary ? Fixed(l.roc_auc) : "—") << " | "
             << (s.binary ? Fixed(l.ap) : "—") << " | " << (c ? Fixed(c->accuracy) : "—") << " | "
             << (c ? Fixed(c->f1) : "—") << " | " << (c ? Fixed(c->threshold) : "—") << " | "
             << l.undefined_cosines << " | " << (c ? Cell(s.threshold_source) : "—") << " |\n";
        }
      }
    }
    md << "\n### " << t.task << ": costs per method (each measured on its own)\n\n";
    md << "| method | split | pairs | sentences | tokens | embed s | s / pair | s / sentence | "
          "tokens/s | load s | peak RSS MiB | isolated |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const eval::MethodResult& m : t.methods) {
      for (const eval::SplitResult& s : m.splits) {
        md << "| " << m.method << " | " << s.split << " | " << s.n_pairs << " | " << s.n_sentences
           << " | " << s.tokens << " | " << Fixed(s.embed_seconds, 3) << " | "
           << Sci(s.SecondsPerPair()) << " | " << Sci(s.SecondsPerSentence()) << " | "
           << Fixed(s.TokensPerSecond(), 0) << " | " << Fixed(m.load_seconds, 3) << " | "
           << Mib(s.peak_rss_kib) << " | " << (m.peak_rss_isolated ? "yes" : "no") << " |\n";
      }
    }
    if (!t.comparisons.empty()) {
      md << "\n### " << t.task << ": paired tests (Spearman difference A − B)\n\n";
      md << "Paired bootstrap over pairs (same resampled pairs for both systems); two-sided "
            "p-value. \"vs_best\" compares against the best layer chosen on the same split "
            "(descriptive).\n\n";
      md << "| split | kind | A | B | A − B [95% CI] | p |\n|---|---|---|---|---|---|\n";
      for (const eval::Comparison& c : t.comparisons) {
        md << "| " << c.split << " | " << c.kind << " | " << SystemName(t, c.method_a, c.layer_a)
           << " | " << SystemName(t, c.method_b, c.layer_b) << " | " << Fixed(c.test.difference)
           << " [" << Fixed(c.test.lo, 3) << ", " << Fixed(c.test.hi, 3) << "] | "
           << Fixed(c.test.p_value, 3) << " |\n";
      }
    }
    bool any_spread = false;
    for (const eval::MethodResult& m : t.methods) any_spread |= !m.spread.empty();
    if (any_spread) {
      md << "\n### " << t.task << ": spread of Spearman over seeded training subsets\n\n";
      md << "| method | layer | subset | seeds | mean | sd | min | max |\n"
            "|---|---|---|---|---|---|---|---|\n";
      for (const eval::MethodResult& m : t.methods) {
        for (const eval::SubsetSpread& sp : m.spread) {
          std::string seeds;
          for (uint64_t s : sp.seeds) seeds += (seeds.empty() ? "" : ",") + std::to_string(s);
          const bool ok = sp.summary.n > 0;
          md << "| " << m.method << " | " << (m.layered() ? LayerWithHf(m, sp.layer) : "0") << " | "
             << m.spread_split << " | " << seeds << " | " << (ok ? Fixed(sp.summary.mean) : "n/a")
             << " | " << (ok ? Fixed(sp.summary.sd) : "n/a") << " | "
             << (ok ? Fixed(sp.summary.min) : "n/a") << " | "
             << (ok ? Fixed(sp.summary.max) : "n/a") << " |\n";
        }
      }
    }
    if (t.task == "mrpc") {
      std::vector<int> hf_layers;
      for (const PublishedRow& row : kStudySpearman) {
        if (row.hf_layer >= 0) hf_layers.push_back(row.hf_layer);
      }
      const std::string q = QualitativeTable(t, "dev", 5, hf_layers);
      if (!q.empty()) {
        md << "\n### Qualitative table: the first five MRPC validation pairs\n\n";
        md << "The study's appendix samples (its samples 2 and 5 have label 0, as here). "
              "Cosine of each method (RWKV: the study's HF layers that exist).\n\n"
           << q;
      }
    }
    md << "\n";
  }
  for (const TaskResults& t : tasks) md << PoolingComparisonSection(t);
  if (!plots.empty()) {
    md << "## Plots\n\n";
    for (const std::string& p : plots) md << "![" << p << "](" << p << ")\n\n";
  }
  return md.str();
}

}  // namespace rwkv_embed::report
