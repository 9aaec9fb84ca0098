#include "report/layer_analysis.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/timing.h"
#include "data/pairs.h"
#include "eval/resources.h"
#include "model/layer_spec.h"
#include "report/report.h"

namespace rwkv_embed::report {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string Fixed(double v, int digits = 4) {
  if (!std::isfinite(v)) return "–";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string Fixed(const std::optional<double>& v, int digits = 4) {
  return v ? Fixed(*v, digits) : "–";
}

json OptionalNumber(const std::optional<double>& v) { return v ? Number(*v) : json(nullptr); }

// The non-empty texts' pooled vectors of one layer, compacted.
std::vector<float> NonEmptyRows(const Matrix& pooled, const std::vector<uint8_t>& empty,
                                int64_t* rows) {
  std::vector<float> out;
  *rows = 0;
  for (int64_t r = 0; r < pooled.rows(); ++r) {
    if (!empty.empty() && empty[r]) continue;
    out.insert(out.end(), pooled.Row(r), pooled.Row(r) + pooled.cols());
    ++*rows;
  }
  return out;
}

void FillDatasetStatistics(const Matrix& pooled, const std::vector<uint8_t>& empty, double alpha,
                           LayerAnalysisRow* row) {
  int64_t n = 0;
  const std::vector<float> v = NonEmptyRows(pooled, empty, &n);
  const analysis::RowSet set{v.data(), n, pooled.cols(), 0};
  row->dataset_entropy = analysis::MatrixEntropy(set, alpha);
  row->anisotropy = analysis::Anisotropy(set, false);
  row->anisotropy_centered = analysis::Anisotropy(set, true);
  row->effective_rank = analysis::EffectiveRank(analysis::RowSingularValues(set, true));
}

// A plot file stem part from a model name: letters, digits, '.', '-', '_' only.
std::string StemPart(const std::string& name) {
  std::string out;
  for (char c : name) {
    out +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  }
  return out;
}

const char* const kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"};

std::string Title(const LayerAnalysis& a) { return a.model + " " + a.task + " " + a.split; }

}  // namespace

std::vector<WeightSpectrum> AnalyzeWeights(const SequenceModel& model) {
  std::vector<WeightSpectrum> out;
  for (int64_t b = 0; b < model.num_blocks(); ++b) {
    for (const NamedWeight& w : model.BlockProjections(b)) {
      const Matrix dense = DenseWeightRows(w.weight);
      WeightSpectrum s;
      s.block = b + 1;
      s.matrix = w.name;
      s.rows = dense.rows();
      s.cols = dense.cols();
      s.singular_values =
          analysis::RowSingularValues({dense.data(), dense.rows(), dense.cols(), 0}, false);
      s.effective_rank = analysis::EffectiveRank(s.singular_values);
      s.decay = analysis::FitPowerLawDecay(s.singular_values);
      out.push_back(std::move(s));
    }
  }
  return out;
}

LayerAnalysis AnalyzeLayers(RwkvEmbedder& embedder, std::span<const std::string> texts,
                            const LayerAnalysisOptions& options) {
  LayerAnalysis a;
  const SequenceModel& m = embedder.model();
  a.architecture = std::string(m.Architecture());
  a.description = m.Describe();
  a.random_weights = m.random_weights();
  a.alpha = options.alpha;
  a.max_text_tokens = options.max_text_tokens;
  a.texts = static_cast<int64_t>(texts.size());
  const std::vector<int> layers = options.layers.empty() ? embedder.Layers() : options.layers;
  eval::ResetPeakRss();

  const auto t0 = Clock::now();
  std::vector<std::vector<int32_t>> ids = embedder.Tokenize(texts);
  std::vector<int64_t> lengths;
  for (const auto& t : ids) {
    lengths.push_back(static_cast<int64_t>(t.size()));
    a.tokens += lengths.back();
    a.empty_texts += t.empty() ? 1 : 0;
  }
  analysis::TokenStatisticsOptions to;
  to.alpha = options.alpha;
  to.max_text_tokens = options.max_text_tokens;
  analysis::TokenStatistics stats(layers, lengths, embedder.Dim(), to);
  a.texts_over_cap = stats.texts_over_cap();
  TokenEmbedOptions token_options;
  token_options.token_tap = [&](int64_t text, int layer, int64_t first, const float* rows,
                                int64_t T) {
    const auto t = Clock::now();
    stats.Add(text, layer, first, rows, T);
    a.token_seconds += SecondsSince(t);
  };
  EmbedRequest request;
  request.layers = layers;
  request.pooling = Pooling::kMean;
  request.normalization = Normalization::kNone;
  const EmbedResult pooled = embedder.EmbedTokens(std::move(ids), request, token_options);
  const auto tf = Clock::now();
  stats.Finish();
  a.token_seconds += SecondsSince(tf);
  a.forward_seconds = SecondsSince(t0);

  const auto td = Clock::now();
  const std::vector<LayerInfo> infos = embedder.DescribeLayers();
  for (size_t i = 0; i < pooled.layers.size(); ++i) {
    LayerAnalysisRow row;
    row.info.layer = pooled.layers[i];
    for (const LayerInfo& info : infos) {
      if (info.layer == pooled.layers[i]) row.info = info;
    }
    const auto it = std::find(layers.begin(), layers.end(), pooled.layers[i]);
    row.tokens = stats.results()[it - layers.begin()];
    FillDatasetStatistics(pooled.embeddings[i], pooled.empty, options.alpha, &row);
    a.layers.push_back(std::move(row));
  }
  a.dataset_seconds = SecondsSince(td);
  if (options.weights) {
    const auto tw = Clock::now();
    a.weights = AnalyzeWeights(m);
    a.weight_seconds = SecondsSince(tw);
  }
  a.peak_rss_kib = eval::PeakRssKib();
  return a;
}

LayerAnalysis RunLayerAnalysis(const LayerAnalysisPlan& plan) {
  // Data before the model: a bad path or split costs no load.
  const PairDataset data = LoadTask(plan.task, plan.split, plan.data_dir, plan.seed);
  const std::vector<std::string> texts = UniqueSentences(data, nullptr);
  auto embedder = RwkvEmbedder::Load(plan.model, plan.vocab, plan.embedder, {}, plan.tokenizer);
  LayerAnalysisOptions o = plan.options;
  o.layers = ParseLayerSpec(plan.layers, embedder->layer_numbering(), plan.hf_index);
  LayerAnalysis a = AnalyzeLayers(*embedder, texts, o);
  const std::filesystem::path n = plan.model.lexically_normal();
  a.model = n.has_filename() ? n.filename().string() : n.parent_path().filename().string();
  a.task = plan.task;
  a.split = plan.split;
  return a;
}

json LayerAnalysisJson(const LayerAnalysis& a, const RunInfo& run) {
  json j;
  j["tool"] = "rwkv-embed analyze";
  j["tool_version"] = run.tool_version;
  j["command_line"] = run.command_line;
  j["model"] = {{"name", a.model},
                {"architecture", a.architecture},
                {"description", a.description},
                {"random_weights", a.random_weights}};
  j["task"] = a.task;
  j["split"] = a.split;
  j["texts"] = a.texts;
  j["tokens"] = a.tokens;
  j["empty_texts"] = a.empty_texts;
  j["texts_over_token_cap"] = a.texts_over_cap;
  json settings = run.settings.is_object() ? run.settings : json::object();
  settings["alpha"] = a.alpha;
  settings["max_text_tokens"] = a.max_text_tokens;
  settings["pooling"] = "mean";
  j["settings"] = settings;
  j["definitions"] = {
      {"texts", "the split's distinct sentences, as eval embeds them; empty texts are left out"},
      {"matrix_entropy",
       "subtract the rows' mean, L2-normalise rows (zero rows dropped), K = Z Z^T, lambda = "
       "eigenvalues of K / tr K, S_alpha = log(sum lambda^alpha) / (1 - alpha) (alpha = 1: -sum "
       "lambda log lambda, natural log), divided by log(min(rows kept, C)); 0 when fewer than 2 "
       "rows are kept (Skean et al. 2025, arXiv 2502.02013)"},
      {"prompt_entropy", "mean over texts with >= 2 tokens of the matrix entropy of their tokens"},
      {"dataset_entropy", "matrix entropy of the texts' mean-pooled vectors"},
      {"curvature",
       "per text with >= 3 tokens: steps v_t = h_{t+1} - h_t, mean over t of arccos(cos(v_t, "
       "v_{t+1})) in radians over pairs of non-zero steps; mean over texts with an angle"},
      {"anisotropy",
       "mean cosine over all unordered pairs of distinct texts' mean-pooled vectors (exact, "
       "closed form; zero vectors left out)"},
      {"anisotropy_centered", "the same after subtracting the mean pooled vector"},
      {"effective_rank",
       "exp(-sum p log p), p = sigma / sum sigma, sigma = singular values of the centred matrix "
       "of mean-pooled vectors (Roy & Vetterli 2007)"},
      {"weights.effective_rank", "the same formula on the uncentred weight matrix"},
      {"weights.decay_exponent",
       "p of the least-squares fit log sigma_i = a - p log i (i = 1-based rank) over singular "
       "values above 1e-10 sigma_1, i.e. sigma_i ~ i^-p"}};
  json layers = json::array();
  for (const LayerAnalysisRow& r : a.layers) {
    json reasons = json::object();
    if (!r.info.hf_index) reasons["hf_layer"] = r.info.no_hf_reason;
    layers.push_back(
        {{"layer", r.info.layer},
         {"hf_layer", r.info.hf_index ? json(*r.info.hf_index) : json(nullptr)},
         {"label", r.info.label},
         {"prompt_entropy",
          r.tokens.prompt_entropy_texts > 0 ? Number(r.tokens.prompt_entropy) : json(nullptr)},
         {"prompt_entropy_texts", r.tokens.prompt_entropy_texts},
         {"dataset_entropy", Number(r.dataset_entropy)},
         {"curvature", r.tokens.curvature_texts > 0 ? Number(r.tokens.curvature) : json(nullptr)},
         {"curvature_texts", r.tokens.curvature_texts},
         {"anisotropy", OptionalNumber(r.anisotropy)},
         {"anisotropy_centered", OptionalNumber(r.anisotropy_centered)},
         {"effective_rank", Number(r.effective_rank)},
         {"null_reasons", reasons}});
  }
  j["layers"] = layers;
  json weights = json::array();
  for (const WeightSpectrum& w : a.weights) {
    json sv = json::array();
    for (double s : w.singular_values) sv.push_back(Number(s));
    weights.push_back(
        {{"block", w.block},
         {"matrix", w.matrix},
         {"shape", {w.rows, w.cols}},
         {"singular_values", sv},
         {"effective_rank", Number(w.effective_rank)},
         {"decay_exponent", w.decay.points >= 2 ? Number(w.decay.exponent) : json(nullptr)},
         {"decay_fit_r2", w.decay.points >= 2 ? Number(w.decay.r2) : json(nullptr)},
         {"decay_fit_points", w.decay.points}});
  }
  j["weights"] = weights;
  j["costs"] = {{"forward_and_token_statistics_seconds", a.forward_seconds},
                {"token_statistics_seconds", a.token_seconds},
                {"dataset_statistics_seconds", a.dataset_seconds},
                {"weight_spectra_seconds", a.weight_seconds},
                {"peak_rss_mib", a.peak_rss_kib < 0 ? json(nullptr) : json(a.peak_rss_kib / 1024)},
                {"threads", omp_get_max_threads()}};
  j["notes"] = run.notes;
  return j;
}

std::string LayerStatisticsTable(const LayerAnalysis& a) {
  std::ostringstream md;
  md << "| layer | HF | where | prompt entropy | dataset entropy | curvature (rad) | anisotropy "
        "| anisotropy, centred | effective rank |\n"
     << "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const LayerAnalysisRow& r : a.layers) {
    md << "| " << r.info.layer << " | "
       << (r.info.hf_index ? std::to_string(*r.info.hf_index) : "–") << " | " << r.info.label
       << " | " << (r.tokens.prompt_entropy_texts > 0 ? Fixed(r.tokens.prompt_entropy) : "–")
       << " | " << Fixed(r.dataset_entropy) << " | "
       << (r.tokens.curvature_texts > 0 ? Fixed(r.tokens.curvature) : "–") << " | "
       << Fixed(r.anisotropy) << " | " << Fixed(r.anisotropy_centered) << " | "
       << Fixed(r.effective_rank, 2) << " |\n";
  }
  return md.str();
}

std::string WeightSpectrumTable(const LayerAnalysis& a) {
  // Per matrix type, in first-seen order: mean and range over blocks.
  std::vector<std::string> names;
  std::map<std::string, std::vector<const WeightSpectrum*>> by_name;
  for (const WeightSpectrum& w : a.weights) {
    if (by_name[w.matrix].empty()) names.push_back(w.matrix);
    by_name[w.matrix].push_back(&w);
  }
  std::ostringstream md;
  md << "| matrix (HF name in the block) | shape | blocks | sigma_1 (mean) | effective rank "
        "(mean; of min(shape)) | decay exponent p (mean [min, max]) | fit R^2 (mean) |\n"
     << "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const std::string& name : names) {
    const auto& ws = by_name[name];
    double s1 = 0, er = 0, p = 0, r2 = 0, pmin = INFINITY, pmax = -INFINITY;
    for (const WeightSpectrum* w : ws) {
      s1 += w->singular_values.empty() ? 0.0 : w->singular_values[0];
      er += w->effective_rank;
      p += w->decay.exponent;
      r2 += w->decay.r2;
      pmin = std::min(pmin, w->decay.exponent);
      pmax = std::max(pmax, w->decay.exponent);
    }
    const double n = static_cast<double>(ws.size());
    md << "| `" << name << "` | " << ws[0]->rows << " x " << ws[0]->cols << " | " << ws.size()
       << " | " << Fixed(s1 / n, 3) << " | " << Fixed(er / n, 1) << " of "
       << std::min(ws[0]->rows, ws[0]->cols) << " | " << Fixed(p / n, 3) << " [" << Fixed(pmin, 3)
       << ", " << Fixed(pmax, 3) << "] | " << Fixed(r2 / n, 3) << " |\n";
  }
  return md.str();
}

std::string LayerAnalysisCostTable(const std::vector<LayerAnalysis>& analyses) {
  std::ostringstream md;
  md << "| model | task | split | texts | tokens | forward + token statistics (s) | of which "
        "token statistics (s) | dataset statistics (s) | weight spectra (s) | peak RSS (MiB) |\n"
     << "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const LayerAnalysis& a : analyses) {
    md << "| " << a.model << " | " << a.task << " | " << a.split << " | " << a.texts << " | "
       << a.tokens << " | " << Fixed(a.forward_seconds, 2) << " | " << Fixed(a.token_seconds, 2)
       << " | " << Fixed(a.dataset_seconds, 2) << " | " << Fixed(a.weight_seconds, 2) << " | "
       << (a.peak_rss_kib < 0 ? "–" : std::to_string(a.peak_rss_kib / 1024)) << " |\n";
  }
  return md.str();
}

std::string LayerAnalysisSection(const std::vector<LayerAnalysis>& analyses,
                                 const std::vector<std::string>& plots) {
  std::ostringstream md;
  md << "## Beyond the study: layer analysis\n\n"
     << "The study proposes, without running them, entropy curves per layer and the "
        "singular-value spectra of RWKV's weights (its future work). Here they are measured "
        "from one forward pass over the split's distinct sentences. **The study's \"Shannon "
        "entropy of hidden states\" is, made concrete, the matrix-based entropy of Skean et al. "
        "2025 (\"Layer by Layer\", arXiv 2502.02013)**: centre a set of vectors, L2-normalise "
        "them, take the eigenvalues lambda of K / tr K with K = Z Z^T, and "
        "S = -sum lambda log lambda / log(min(n, C)) (Rényi order alpha = "
     << (analyses.empty() ? 1.0 : analyses.front().alpha)
     << "; alpha = 1 is Shannon). *Prompt entropy* is that over the tokens of each text (averaged "
        "over texts), *dataset entropy* over the texts' mean-pooled vectors; near 1 the vectors "
        "spread over all directions, near 0 they collapse. *Curvature* is the mean angle "
        "(radians) between successive token-to-token steps of a text's trajectory. "
        "*Anisotropy* is the mean cosine between different texts' sentence vectors (and after "
        "subtracting their mean); *effective rank* is exp of the entropy of the normalised "
        "singular values of the centred sentence-vector matrix (Roy & Vetterli 2007). Weight "
        "spectra: the singular values sigma_i of every projection matrix; the *decay exponent* "
        "p is the least-squares slope of log sigma_i against log i (sigma_i ~ i^-p), so the "
        "study's \"~30% faster singular-value decay than Transformers\" becomes a comparison of "
        "p with the same fit on a Transformer's weights (not run here).\n\n";
  const bool random = std::any_of(analyses.begin(), analyses.end(), [](const LayerAnalysis& a) {
    return a.random_weights || a.model.find("tiny") != std::string::npos;
  });
  if (random) {
    md << "**With random weights these numbers say nothing about RWKV**: a random-weight (tiny "
          "test) model was analysed, so the tables exercise the analysis, not the "
          "architecture.\n\n";
  }
  for (const LayerAnalysis& a : analyses) {
    md << "### " << Title(a) << "\n\n"
       << a.texts << " distinct texts, " << a.tokens << " tokens"
       << (a.empty_texts > 0 ? ", " + std::to_string(a.empty_texts) + " empty (left out)" : "")
       << (a.texts_over_cap > 0 ? ", " + std::to_string(a.texts_over_cap) + " over " +
                                      std::to_string(a.max_text_tokens) +
                                      " tokens (left out of prompt entropy and curvature)"
                                : "")
       << ". " << a.description << "\n\n"
       << LayerStatisticsTable(a) << "\n";
    if (!a.weights.empty()) {
      md << "Weight spectra (every block; singular values per block and matrix in the JSON):\n\n"
         << WeightSpectrumTable(a) << "\n";
    }
  }
  for (const std::string& p : plots) md << "![" << p << "](" << p << ")\n\n";
  md << "Cost of the analysis (wall time on this machine, which may be shared; one forward pass "
        "feeds every layer statistic):\n\n"
     << LayerAnalysisCostTable(analyses) << "\n";
  return md.str();
}

std::vector<PlotFiles> PlotLayerAnalysis(const std::vector<LayerAnalysis>& analyses,
                                         const std::filesystem::path& out_dir,
                                         const std::string& prefix) {
  std::vector<PlotFiles> out;
  if (analyses.empty()) return out;
  // Layer curves: one data block per analysis.
  std::ostringstream data;
  int max_layer = 0;
  for (const LayerAnalysis& a : analyses) {
    data << "# " << Title(a)
         << ": layer prompt_entropy dataset_entropy curvature anisotropy anisotropy_centered "
            "effective_rank\n";
    for (const LayerAnalysisRow& r : a.layers) {
      max_layer = std::max(max_layer, r.info.layer);
      const auto v = [](bool ok, double x) {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.6g", x);
        return ok && std::isfinite(x) ? std::string(buf) : std::string("NaN");
      };
      data << r.info.layer << " " << v(r.tokens.prompt_entropy_texts > 0, r.tokens.prompt_entropy)
           << " " << v(true, r.dataset_entropy) << " "
           << v(r.tokens.curvature_texts > 0, r.tokens.curvature) << " "
           << v(r.anisotropy.has_value(), r.anisotropy.value_or(0)) << " "
           << v(r.anisotropy_centered.has_value(), r.anisotropy_centered.value_or(0)) << " "
           << v(true, r.effective_rank) << "\n";
    }
    data << "\n\n";
  }
  const auto curves = [&](const std::string& stem, const std::string& title,
                          const std::vector<std::tuple<std::string, int, std::string, int>>& left,
                          const std::vector<std::tuple<std::string, int, std::string, int>>& right,
                          const std::string& left_label, const std::string& right_label) {
    std::ostringstream gp;
    gp << "# " << title << "; drawn from " << stem << ".dat\n"
       << "set terminal svg size 1100,480 dynamic noenhanced font 'Sans,12' background rgb "
          "'white'\n"
       << PlotOutputLines(stem) << "set grid\nset key bottom left font ',10' opaque box\n"
       << "set xrange [-0.5:" << max_layer + 0.5 << "]\nset xtics 1\n"
       << "set xlabel 'layer (ours: 0 = input norm, k = block k, L+1 = ln_out)'\n"
       << "set multiplot layout 1,2 title " << GnuplotQuote(title) << "\n";
    for (const auto* panel : {&left, &right}) {
      gp << "set ylabel " << GnuplotQuote(panel == &left ? left_label : right_label) << "\nplot ";
      bool first = true;
      for (size_t ai = 0; ai < analyses.size(); ++ai) {
        for (const auto& [name, column, dash, point] : *panel) {
          gp << (first ? "" : ", \\\n     ") << "'" << stem << ".dat' index " << ai
             << " using 1:" << column << " with linespoints lw 2 pt " << point << " dt " << dash
             << " lc rgb '" << kColours[ai % std::size(kColours)] << "' title "
             << GnuplotQuote(name + (analyses.size() > 1 ? " (" + Title(analyses[ai]) + ")" : ""));
          first = false;
        }
      }
      gp << "\n";
    }
    gp << "unset multiplot\n";
    out.push_back(DrawPlot(out_dir, stem, data.str(), gp.str()));
  };
  curves(prefix + "-entropy", "Matrix entropy and curvature per layer",
         {{"prompt entropy", 2, "1", 7}, {"dataset entropy", 3, "2", 5}},
         {{"curvature", 4, "1", 7}}, "normalised matrix entropy", "mean turning angle (rad)");
  curves(prefix + "-geometry", "Anisotropy and effective rank of sentence vectors per layer",
         {{"anisotropy", 5, "1", 7}, {"anisotropy, centred", 6, "2", 5}},
         {{"effective rank", 7, "1", 7}}, "mean cosine between texts", "effective rank (centred)");

  // Weight spectra: one plot per distinct model, a panel per matrix type, first/middle/last block.
  std::vector<const LayerAnalysis*> models;
  for (const LayerAnalysis& a : analyses) {
    if (a.weights.empty()) continue;
    if (std::none_of(models.begin(), models.end(),
                     [&](const LayerAnalysis* m) { return m->model == a.model; })) {
      models.push_back(&a);
    }
  }
  for (const LayerAnalysis* a : models) {
    const std::string stem =
        prefix + "-weights" + (models.size() > 1 ? "-" + StemPart(a->model) : "");
    std::vector<std::string> names;
    int64_t last_block = 0;
    for (const WeightSpectrum& w : a->weights) {
      if (std::find(names.begin(), names.end(), w.matrix) == names.end()) names.push_back(w.matrix);
      last_block = std::max(last_block, w.block);
    }
    std::vector<int64_t> blocks = {1, (last_block + 1) / 2, last_block};
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    std::ostringstream wd, gp;
    int index = 0;
    std::vector<std::vector<std::string>> panels(names.size());
    for (size_t ni = 0; ni < names.size(); ++ni) {
      for (size_t bi = 0; bi < blocks.size(); ++bi) {
        for (const WeightSpectrum& w : a->weights) {
          if (w.matrix != names[ni] || w.block != blocks[bi] || w.singular_values.empty()) continue;
          wd << "# " << w.matrix << " block " << w.block << ": i sigma_i/sigma_1\n";
          for (size_t i = 0; i < w.singular_values.size(); ++i) {
            if (w.singular_values[i] > 0) {
              wd << i + 1 << " " << w.singular_values[i] / w.singular_values[0] << "\n";
            }
          }
          wd << "\n\n";
          char p[32];
          std::snprintf(p, sizeof(p), "%.2f", w.decay.exponent);
          panels[ni].push_back(
              "'" + stem + ".dat' index " + std::to_string(index++) +
              " using 1:2 with lines lw 2 lc rgb '" + kColours[bi % std::size(kColours)] +
              "' title " + GnuplotQuote("block " + std::to_string(w.block) + " (p = " + p + ")"));
        }
      }
    }
    const size_t cols = std::min<size_t>(4, std::max<size_t>(names.size(), 1));
    const size_t rows = (names.size() + cols - 1) / cols;
    gp << "# Weight singular values of " << a->model << "; drawn from " << stem << ".dat\n"
       << "set terminal svg size " << 330 * cols + 40 << "," << 300 * rows + 60
       << " dynamic noenhanced font 'Sans,11' background rgb 'white'\n"
       << PlotOutputLines(stem) << "set grid\nset logscale xy\nset key bottom left font ',9'\n"
       << "set xlabel 'rank i'\nset ylabel 'sigma_i / sigma_1'\n"
       << "set multiplot layout " << rows << "," << cols << " title "
       << GnuplotQuote("Singular values of the projection weights of " + a->model +
                       " (log-log; p = fitted decay exponent)")
       << "\n";
    for (size_t ni = 0; ni < names.size(); ++ni) {
      if (panels[ni].empty()) continue;
      gp << "set title " << GnuplotQuote(names[ni]) << "\nplot ";
      for (size_t i = 0; i < panels[ni].size(); ++i) {
        gp << (i ? ", \\\n     " : "") << panels[ni][i];
      }
      gp << "\n";
    }
    gp << "unset multiplot\n";
    out.push_back(DrawPlot(out_dir, stem, wd.str(), gp.str()));
  }
  return out;
}

std::vector<std::filesystem::path> WriteLayerAnalysis(const std::vector<LayerAnalysis>& analyses,
                                                      const RunInfo& run,
                                                      const std::filesystem::path& json_path,
                                                      const std::filesystem::path& out_dir,
                                                      std::vector<std::string>* messages) {
  std::vector<std::filesystem::path> written;
  if (!json_path.empty()) {
    if (analyses.size() != 1) throw UsageError("one JSON file holds one analysis");
    WriteJson(LayerAnalysisJson(analyses.front(), run), json_path);
    written.push_back(json_path);
  }
  std::vector<std::string> plot_names;
  RecordPlots(PlotLayerAnalysis(analyses, out_dir / "plots", "analysis"), written, plot_names,
              messages);
  std::ostringstream md;
  md << "# rwkv-embed layer analysis\n\n"
     << "Command: `" << run.command_line << "` (rwkv-embed " << run.tool_version << ")\n\n";
  for (const std::string& n : run.notes) md << "- " << n << "\n";
  md << "\n" << LayerAnalysisSection(analyses, plot_names);
  const std::filesystem::path report = out_dir / "report.md";
  WriteText(md.str(), report);
  written.push_back(report);
  return written;
}

std::string BeyondLayerAnalysis(const RunOptions& o, const RunInfo& run,
                                const std::filesystem::path& out_dir,
                                std::vector<std::filesystem::path>* written,
                                std::vector<std::string>* messages) {
  std::vector<LayerAnalysis> analyses;
  RunInfo info = run;
  info.settings = {{"layers", o.layers},
                   {"layers_are_hf_indices", o.hf_index},
                   {"precision", o.precision == kernels::MatMulPrecision::kBF16 ? "bf16" : "f32"},
                   {"batch_tokens", o.batch_tokens},
                   {"seed", o.seed},
                   {"weights", true}};
  info.notes.clear();
  for (const std::filesystem::path& model : o.models) {
    for (const TaskPlan& t : o.tasks) {
      if (!t.pair_file.empty() || t.splits.empty()) continue;  // reproduce: MRPC / STS-B only
      LayerAnalysisPlan plan;
      plan.model = model;
      plan.vocab = o.vocab;
      plan.data_dir = o.data_dir;
      plan.tokenizer = o.tokenizer;
      plan.embedder.batch_tokens = o.batch_tokens;
      plan.embedder.precision = o.precision;
      plan.task = t.task;
      const bool has_dev = std::find(t.splits.begin(), t.splits.end(), "dev") != t.splits.end();
      plan.split = has_dev ? "dev" : t.splits.front();
      plan.layers = o.layers;
      plan.hf_index = o.hf_index;
      plan.seed = o.seed;
      // The weights are the same for every task: their spectra once per model.
      plan.options.weights = &t == &o.tasks.front();
      if (o.log) o.log("analysis: " + model.string() + " on " + plan.task + " " + plan.split);
      analyses.push_back(RunLayerAnalysis(plan));
      const LayerAnalysis& a = analyses.back();
      const std::filesystem::path json_path =
          out_dir / ("analysis-" + a.task + "-" + a.split +
                     (o.models.size() > 1 ? "-" + StemPart(a.model) : "") + ".json");
      WriteJson(LayerAnalysisJson(a, info), json_path);
      written->push_back(json_path);
    }
  }
  std::vector<std::string> plot_names;
  for (const PlotFiles& f : PlotLayerAnalysis(analyses, out_dir / "plots", "analysis")) {
    written->push_back(f.data);
    written->push_back(f.script);
    if (f.rendered) {
      written->push_back(f.svg);
      plot_names.push_back("plots/" + f.svg.filename().string());
    } else if (messages != nullptr) {
      messages->push_back(f.message);
    }
  }
  return LayerAnalysisSection(analyses, plot_names);
}

}  // namespace rwkv_embed::report
