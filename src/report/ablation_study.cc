#include "report/ablation_study.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <exception>
#include <sstream>

#include "core/error.h"
#include "core/timing.h"
#include "data/pairs.h"
#include "model/layer_spec.h"
#include "report/method_codec.h"
#include "report/plots.h"

namespace rwkv_embed::report {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string Fmt(const char* format, double v) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string Duration(double s) {
  if (s < 120) return Fmt("%.1f s", s);
  if (s < 7200) return Fmt("%.1f min", s / 60);
  return Fmt("%.1f h", s / 3600);
}

void Log(const AblationStudyOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

eval::MethodResult Evaluate(RwkvEmbedder& embedder, const std::string& method,
                            const std::vector<int>& layers, const PairDataset& data,
                            const AblationStudyOptions& o) {
  eval::EvalOptions eo;
  eo.request.layers = layers;
  eo.request.pooling = o.pooling;
  eo.request.normalization = o.normalization;
  eo.bootstrap = o.bootstrap;
  eo.seed = o.seed;
  eo.level = o.level;
  eo.undefined_cosine = o.undefined_cosine;
  eval::MethodResult r = eval::EvaluateMethod(embedder, {{data}, std::nullopt}, eo);
  r.method = method;
  return r;
}

// Paired bootstrap per layer (ablated - intact), layers in parallel.
std::vector<eval::Comparison> VsIntact(const eval::MethodResult& ablated,
                                       const eval::MethodResult& intact, const std::string& split,
                                       const metrics::ResampleOptions& ro) {
  const std::vector<eval::LayerResult>& layers = intact.splits.front().layers;
  const int64_t n = static_cast<int64_t>(layers.size());
  std::vector<eval::Comparison> out(n);
  std::vector<std::exception_ptr> errors(n);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      out[i] = eval::CompareLayers(ablated, layers[i].layer, intact, layers[i].layer, split,
                                   "vs_intact", ro);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return out;
}

// The reference layer of the summaries: the intact model's best scored layer (highest finite
// Spearman; the first on ties) among the block outputs and after — layer 0, the embeddings, is
// the same under every ablation — or layer 0 when it is the only one scored.
int BestLayer(const eval::MethodResult& intact) {
  const auto& layers = intact.splits.front().layers;
  int best_layer = layers.empty() ? 0 : layers.front().layer;
  double best = -HUGE_VAL;
  for (const eval::LayerResult& l : layers) {
    if (l.layer > 0 && std::isfinite(l.spearman) && l.spearman > best) {
      best = l.spearman;
      best_layer = l.layer;
    }
  }
  return best_layer;
}

// Index of `layer` among the scored layers.
size_t LayerIndex(const AblationStudy& s, int layer) {
  const auto& layers = s.intact.splits.front().layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].layer == layer) return i;
  }
  return 0;
}

std::string LayerTick(const eval::LayerResult& l) {
  return std::to_string(l.layer) + (l.hf_layer ? " (" + std::to_string(*l.hf_layer) + ")" : "");
}

json Interval(double lo, double hi) { return json::array({Number(lo), Number(hi)}); }

// "+0.0123 [-0.0040, +0.0281]"
std::string DeltaCell(const metrics::PairedTest& t) {
  std::string cell = Fmt("%+.4f", t.difference);
  if (std::isfinite(t.lo)) cell += " [" + Fmt("%+.4f", t.lo) + ", " + Fmt("%+.4f", t.hi) + "]";
  return cell;
}

// A diverging heat map of `values` (rows x cols, NaN = blank), first row at the top.
PlotFiles HeatMap(const std::vector<std::vector<double>>& values,
                  const std::vector<std::string>& row_labels,
                  const std::vector<std::string>& col_labels, const std::string& title,
                  const std::string& xlabel, const std::string& ylabel,
                  const std::filesystem::path& out_dir, const std::string& stem) {
  std::ostringstream data, gp;
  double m = 0;
  for (const auto& row : values) {
    for (size_t c = 0; c < row.size(); ++c) {
      data << (c ? " " : "") << (std::isfinite(row[c]) ? Fmt("%.6g", row[c]) : "NaN");
      if (std::isfinite(row[c])) m = std::max(m, std::abs(row[c]));
    }
    data << "\n";
  }
  if (m == 0) m = 1e-6;  // every cell 0: a white map with a tiny symmetric range
  const size_t rows = row_labels.size(), cols = col_labels.size();
  auto quote = [](const std::string& s) {
    std::string q = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') q += '\\';
      q += ch;
    }
    return q + "\"";
  };
  gp << "# " << title << "; drawn from " << stem << ".dat\n"
     << "set terminal svg size " << std::max<size_t>(640, 220 + 34 * cols) << ","
     << std::max<size_t>(320, 150 + 18 * rows)
     << " dynamic noenhanced font 'Sans,11' background rgb 'white'\n"
     << "if (!exists('outfile')) outfile = '" << stem << ".svg'\nset output outfile\n"
     << "set title " << quote(title) << "\n"
     << "set xlabel " << quote(xlabel) << "\nset ylabel " << quote(ylabel) << "\n"
     << "set palette defined (-1 '#2166AC', 0 '#F7F7F7', 1 '#B2182B')\n"
     << "set cbrange [" << Fmt("%.6g", -m) << ":" << Fmt("%.6g", m) << "]\n"
     << "set cblabel 'delta Spearman (ablated - intact)'\n"
     << "set xrange [-0.5:" << cols - 0.5 << "]\nset yrange [" << rows - 0.5 << ":-0.5]\n"
     << "set xtics rotate by -60 (";
  for (size_t c = 0; c < cols; ++c) gp << (c ? ", " : "") << quote(col_labels[c]) << " " << c;
  gp << ")\nset ytics (";
  for (size_t r = 0; r < rows; ++r) gp << (r ? ", " : "") << quote(row_labels[r]) << " " << r;
  gp << ")\nset tics scale 0\nset lmargin 24\n"
     << "plot '" << stem << ".dat' matrix with image notitle\n";
  return DrawPlot(out_dir, stem, data.str(), gp.str());
}

}  // namespace

std::vector<AblationRun> PlanAblations(const AblationStudyOptions& o, int64_t num_blocks) {
  std::vector<AblationRun> runs;
  if (!o.grid.empty()) {
    AblationSpec blocks_spec;
    blocks_spec.blocks = ParseBlockList(o.grid_blocks);
    const std::vector<int> blocks = ResolveBlocks(blocks_spec, num_blocks);
    for (size_t s = 0; s < o.grid.size(); ++s) {
      for (int b : blocks) {
        AblationRun r;
        r.spec = o.grid[s];
        r.spec.blocks = {b};
        r.name = r.spec.Name();
        r.grid_switch = static_cast<int>(s);
        r.grid_block = b;
        runs.push_back(std::move(r));
      }
    }
  }
  for (const AblationSpec& spec : o.specs) {
    ResolveBlocks(spec, num_blocks);  // blocks beyond the model fail before anything runs
    AblationRun r;
    r.spec = spec;
    r.name = spec.Name();
    runs.push_back(std::move(r));
  }
  if (runs.empty()) throw UsageError("ablate: nothing to run (give --grid and/or --ablate)");
  return runs;
}

AblationStudy RunAblationStudy(const AblationStudyOptions& o, RunInfo run) {
  const auto t_start = Clock::now();
  run.started_at = UtcNow();
  AblationStudy study;
  study.task = o.task;
  study.split = o.split;
  const PairDataset data = LoadTask(o.task, o.split, o.data_dir, o.seed);
  RwkvEmbedderOptions ro;
  ro.batch_tokens = o.batch_tokens;
  ro.precision = o.precision;
  auto embedder = RwkvEmbedder::Load(o.model, o.vocab, ro, {}, o.tokenizer);
  const SequenceModel& m = embedder->model();
  study.architecture = std::string(m.Architecture());
  study.model_description = m.Describe();
  study.random_weights = m.random_weights();
  study.num_blocks = m.num_blocks();
  const std::vector<int> layers = ParseLayerSpec(o.layers, m.layer_numbering(), o.hf_index);
  study.ablations = PlanAblations(o, m.num_blocks());
  for (const AblationSpec& g : o.grid) study.grid_switches.push_back(g.SwitchName());
  if (!o.grid.empty()) {
    AblationSpec all;
    all.blocks = ParseBlockList(o.grid_blocks);
    study.grid_blocks = ResolveBlocks(all, m.num_blocks());
  }
  const size_t n = study.ablations.size();
  const int64_t sentences = static_cast<int64_t>(UniqueSentences(data, nullptr).size());
  Log(o, "ablate: " + std::to_string(n) + " ablations" +
             (o.grid.empty()
                  ? std::string()
                  : " (grid " + std::to_string(study.grid_switches.size()) + " switches x " +
                        std::to_string(study.grid_blocks.size()) + " blocks)") +
             " + the intact model = " + std::to_string(n + 1) + " passes over " +
             std::to_string(sentences) + " sentences of " + o.task + " " + o.split + ", " +
             std::to_string(layers.size()) + " layers each, " + std::to_string(o.bootstrap) +
             " bootstrap resamples");

  // Unit 0 = the intact model, unit 1 + i = ablation i; all of them here, or those o.sweep deals
  // to this process (each pass sets the model's ablation, so any subset runs in any process).
  std::vector<SweepUnit> mine;
  std::vector<char> ran_here(n + 1, 0);
  double per_pass = 0;
  for (size_t u = 0; u <= n; ++u) {
    if (!o.sweep.Runs(static_cast<int>(u))) continue;
    const auto t0 = Clock::now();
    ran_here[u] = 1;
    eval::MethodResult* result = u == 0 ? &study.intact : &study.ablations[u - 1].result;
    const std::string name = u == 0 ? "intact" : study.ablations[u - 1].name;
    ApplyAblations(u == 0 ? std::vector<AblationSpec>{}
                          : std::vector<AblationSpec>{study.ablations[u - 1].spec},
                   *embedder);
    *result = Evaluate(*embedder, u == 0 ? "rwkv" : "rwkv[" + name + "]", layers, data, o);
    if (u > 0) result->description += "; ABLATED: " + name;
    const double seconds = SecondsSince(t0);
    if (per_pass == 0) per_pass = seconds;
    const double elapsed = SecondsSince(t_start);
    if (u == 0) {
      Log(o, "ablate: intact model: " + Duration(seconds) + " (" +
                 std::to_string(result->splits.front().tokens) + " tokens); the " +
                 std::to_string(n) + " ablations should take about " + Duration(seconds * n) +
                 " more");
    } else {
      Log(o, "ablate: [" + std::to_string(u) + "/" + std::to_string(n) + "] " + name + " " +
                 Duration(seconds) + ", elapsed " + Duration(elapsed) + ", about " +
                 Duration(per_pass * static_cast<double>(n - u)) + " left" +
                 (o.sweep.gather ? " (at most, shared)" : ""));
    }
    if (o.sweep.gather) {
      SweepUnit unit;
      unit.unit = static_cast<int>(u);
      unit.name = name;
      unit.seconds = seconds;
      unit.embed_seconds = result->splits.front().embed_seconds;
      unit.tokens = result->splits.front().tokens;
      unit.result = MethodResultToJson(*result);
      mine.push_back(std::move(unit));
    }
  }
  ApplyAblations({}, *embedder);
  if (o.sweep.gather) {
    std::optional<std::vector<SweepUnit>> all = o.sweep.gather(std::move(mine));
    if (!all) {
      AblationStudy elsewhere;
      elsewhere.gathered_elsewhere = true;
      return elsewhere;
    }
    std::vector<int> expected(n + 1);
    for (size_t u = 0; u <= n; ++u) expected[u] = static_cast<int>(u);
    CheckGatheredUnits(&*all, expected, "ablation passes");
    if (o.sweep.processes > 1) run.mpi = SweepAccounting(o.sweep, *all, SecondsSince(t_start));
    for (const SweepUnit& unit : *all) {  // the other processes' results
      const auto u = static_cast<size_t>(unit.unit);
      if (ran_here[u]) continue;
      (u == 0 ? study.intact : study.ablations[u - 1].result) = MethodResultFromJson(unit.result);
    }
  }
  // The paired comparisons with the intact model, once every pass is in.
  if (o.bootstrap > 0) {
    const metrics::ResampleOptions rs{o.bootstrap, o.seed, o.level};
    for (AblationRun& r : study.ablations)
      r.vs_intact = VsIntact(r.result, study.intact, o.split, rs);
  }

  json& st = run.settings;
  st["pooling"] = std::string(PoolingName(o.pooling));
  st["normalization"] = std::string(NormalizationName(o.normalization));
  st["layers"] = o.layers;
  st["layers_are_hf_indices"] = o.hf_index;
  st["precision"] = o.precision == kernels::MatMulPrecision::kBF16 ? "bf16" : "f32";
  st["batch_tokens"] = o.batch_tokens;
  st["seed"] = o.seed;
  st["bootstrap_resamples"] = o.bootstrap;
  st["confidence_level"] = o.level;
  st["undefined_cosine"] = o.undefined_cosine;
  st["threads"] = omp_get_max_threads();
  st["delta"] =
      "Spearman(ablated) - Spearman(intact) per layer on the same pairs; CI: percentile paired "
      "bootstrap (the same resampled pairs for both), p: two-sided (eval::CompareLayers)";
  run.notes.insert(run.notes.begin(), "Every row but 'intact' is an ABLATED model (" +
                                          std::to_string(n) +
                                          (n == 1 ? " ablation of " : " ablations of ") +
                                          o.model.string() + ", model/ablation.h).");
  if (study.random_weights ||
      o.model.lexically_normal().string().find("tiny") != std::string::npos) {
    run.notes.push_back(
        "The model has random weights (a test model): these deltas measure the harness, not "
        "RWKV.");
  }
  run.evaluation_seconds = SecondsSince(t_start);
  study.run = std::move(run);
  return study;
}

json AblationJson(const AblationStudy& s) {
  json j;
  j["tool"] = "rwkv-embed ablate";
  j["tool_version"] = s.run.tool_version;
  j["command_line"] = s.run.command_line;
  j["started_at"] = s.run.started_at;
  j["evaluation_seconds"] = Number(s.run.evaluation_seconds);
  j["task"] = s.task;
  j["split"] = s.split;
  const eval::SplitResult& is = s.intact.splits.front();
  j["n_pairs"] = is.n_pairs;
  j["n_sentences"] = is.n_sentences;
  j["model"] = {{"name", s.run.model_name},
                {"architecture", s.architecture},
                {"blocks", s.num_blocks},
                {"description", s.model_description},
                {"random_weights", s.random_weights}};
  j["settings"] = s.run.settings;
  j["notes"] = s.run.notes;
  j["metric"] = "cosine_spearman";
  json intact = json::array();
  for (const eval::LayerResult& l : is.layers) {
    intact.push_back({{"layer", l.layer},
                      {"hf_layer", l.hf_layer ? json(*l.hf_layer) : json(nullptr)},
                      {"label", l.label},
                      {"spearman", Number(l.spearman)},
                      {"spearman_ci", Interval(l.spearman_ci.lo, l.spearman_ci.hi)}});
  }
  j["intact"] = {{"embed_seconds", Number(is.embed_seconds)}, {"layers", intact}};
  const int best = BestLayer(s.intact);
  j["reference_layer"] = best;
  if (s.grid_switches.empty()) {
    j["grid"] = nullptr;
  } else {
    j["grid"] = {{"switches", s.grid_switches},
                 {"blocks", s.grid_blocks},
                 {"layer", is.layers.back().layer}};  // of the grid table and heat map
  }
  json runs = json::array();
  for (const AblationRun& r : s.ablations) {
    const eval::SplitResult& sr = r.result.splits.front();
    json layers = json::array();
    for (size_t i = 0; i < sr.layers.size(); ++i) {
      const eval::LayerResult& l = sr.layers[i];
      json lj = {{"layer", l.layer},
                 {"hf_layer", l.hf_layer ? json(*l.hf_layer) : json(nullptr)},
                 {"spearman", Number(l.spearman)},
                 {"spearman_ci", Interval(l.spearman_ci.lo, l.spearman_ci.hi)}};
      if (i < r.vs_intact.size()) {
        const metrics::PairedTest& t = r.vs_intact[i].test;
        lj["delta"] = Number(t.difference);
        lj["delta_ci"] = Interval(t.lo, t.hi);
        lj["p_value"] = Number(t.p_value);
      } else {  // --bootstrap 0
        lj["delta"] = Number(l.spearman - is.layers[i].spearman);
        lj["delta_ci"] = nullptr;
        lj["p_value"] = nullptr;
      }
      layers.push_back(lj);
    }
    json blocks = json::array();
    for (int b : r.spec.blocks) blocks.push_back(b);
    runs.push_back({{"name", r.name},
                    {"switch", r.spec.SwitchName()},
                    {"blocks", r.spec.blocks.empty() ? json("all") : blocks},
                    {"grid_block", r.grid_block > 0 ? json(r.grid_block) : json(nullptr)},
                    {"embed_seconds", Number(sr.embed_seconds)},
                    {"layers", layers}});
  }
  j["ablations"] = runs;
  if (!s.run.mpi.is_null()) j["mpi"] = s.run.mpi;
  return j;
}

std::string AblationMarkdown(const AblationStudy& s, const std::vector<std::string>& plots) {
  std::ostringstream md;
  const eval::SplitResult& is = s.intact.splits.front();
  md << "# rwkv-embed ablate: " << s.run.model_name << " on " << s.task << " " << s.split << "\n\n";
  for (const std::string& note : s.run.notes) md << "- **" << note << "**\n";
  md << "\n| | |\n|---|---|\n"
     << "| tool | rwkv-embed " << s.run.tool_version << " |\n"
     << "| command | `" << s.run.command_line << "` |\n"
     << "| started (UTC) | " << s.run.started_at << " |\n"
     << "| evaluation time | " << Duration(s.run.evaluation_seconds) << " |\n"
     << "| model | " << s.architecture << ", " << s.num_blocks << " blocks"
     << (s.random_weights ? ", random weights" : "") << " |\n"
     << "| pairs / sentences | " << is.n_pairs << " / " << is.n_sentences << " |\n";
  for (const auto& [k, v] : s.run.settings.items()) {
    md << "| " << k << " | " << (v.is_string() ? v.get<std::string>() : v.dump()) << " |\n";
  }
  md << "\n## Intact model\n\n| layer (HF) | label | Spearman [95% CI] |\n|---|---|---|\n";
  for (const eval::LayerResult& l : is.layers) {
    md << "| " << LayerTick(l) << " | " << l.label << " | " << Fmt("%.4f", l.spearman);
    if (std::isfinite(l.spearman_ci.lo)) {
      md << " [" << Fmt("%.4f", l.spearman_ci.lo) << ", " << Fmt("%.4f", l.spearman_ci.hi) << "]";
    }
    md << " |\n";
  }
  const int best = BestLayer(s.intact);
  const size_t bi = LayerIndex(s, best);
  md << "\n## Each ablation at layer " << LayerTick(is.layers[bi])
     << " (the intact model's best block output)\n\nΔ = Spearman(ablated) − Spearman(intact) on "
        "the same "
        "pairs, with its paired-bootstrap CI and two-sided p.\n\n"
     << "| ablation | Spearman | Δ [95% CI] | p |\n|---|---|---|---|\n";
  for (const AblationRun& r : s.ablations) {
    const eval::LayerResult& l = r.result.splits.front().layers[bi];
    md << "| " << r.name << " | " << Fmt("%.4f", l.spearman) << " | ";
    if (bi < r.vs_intact.size()) {
      md << DeltaCell(r.vs_intact[bi].test) << " | " << Fmt("%.3f", r.vs_intact[bi].test.p_value);
    } else {
      md << Fmt("%+.4f", l.spearman - is.layers[bi].spearman) << " | -";
    }
    md << " |\n";
  }
  if (!s.grid_switches.empty()) {
    const size_t gi = is.layers.size() - 1;
    md << "\n## Grid: Δ [95% CI] at layer " << LayerTick(is.layers[gi])
       << " (the last scored layer)\n\n| switch |";
    for (int b : s.grid_blocks) md << " block " << b << " |";
    md << "\n|---|";
    for (size_t b = 0; b < s.grid_blocks.size(); ++b) md << "---|";
    md << "\n";
    for (size_t sw = 0; sw < s.grid_switches.size(); ++sw) {
      md << "| " << s.grid_switches[sw] << " |";
      for (const AblationRun& r : s.ablations) {
        if (r.grid_switch != static_cast<int>(sw)) continue;
        const eval::LayerResult& l = r.result.splits.front().layers[gi];
        md << " "
           << (gi < r.vs_intact.size() ? DeltaCell(r.vs_intact[gi].test)
                                       : Fmt("%+.4f", l.spearman - is.layers[gi].spearman))
           << " |";
      }
      md << "\n";
    }
  }
  md << "\n## Δ Spearman per layer [95% paired-bootstrap CI]\n\n| ablation |";
  for (const eval::LayerResult& l : is.layers) md << " " << LayerTick(l) << " |";
  md << "\n|---|";
  for (size_t i = 0; i < is.layers.size(); ++i) md << "---|";
  md << "\n";
  for (const AblationRun& r : s.ablations) {
    md << "| " << r.name << " |";
    const auto& layers = r.result.splits.front().layers;
    for (size_t i = 0; i < layers.size(); ++i) {
      md << " "
         << (i < r.vs_intact.size() ? DeltaCell(r.vs_intact[i].test)
                                    : Fmt("%+.4f", layers[i].spearman - is.layers[i].spearman))
         << " |";
    }
    md << "\n";
  }
  if (!plots.empty()) {
    md << "\n## Heat maps\n\n";
    for (const std::string& p : plots) md << "![" << p << "](" << p << ")\n\n";
  }
  return md.str();
}

std::vector<std::filesystem::path> WriteAblationOutputs(const AblationStudy& s,
                                                        const std::filesystem::path& json_path,
                                                        const std::filesystem::path& out_dir,
                                                        std::vector<std::string>* messages) {
  std::vector<std::filesystem::path> written;
  WriteJson(AblationJson(s), json_path);
  written.push_back(json_path);
  if (out_dir.empty()) return written;
  const auto& il = s.intact.splits.front().layers;
  std::vector<std::string> layer_labels, run_labels, plot_names;
  for (const eval::LayerResult& l : il) layer_labels.push_back(LayerTick(l));
  std::vector<std::vector<double>> per_layer;
  for (const AblationRun& r : s.ablations) {
    run_labels.push_back(r.name);
    std::vector<double> row;
    const auto& layers = r.result.splits.front().layers;
    for (size_t i = 0; i < layers.size(); ++i) row.push_back(layers[i].spearman - il[i].spearman);
    per_layer.push_back(row);
  }
  const std::filesystem::path plot_dir = out_dir / "plots";
  std::vector<PlotFiles> plots = {HeatMap(
      per_layer, run_labels, layer_labels, "delta Spearman per layer, " + s.task + " " + s.split,
      "layer (ours; HF index in brackets)", "ablation", plot_dir, "ablation-layers")};
  if (!s.grid_switches.empty()) {
    const size_t gi = il.size() - 1;  // the last scored layer: every ablation reaches it
    std::vector<std::vector<double>> grid(s.grid_switches.size());
    std::vector<std::string> blocks;
    for (int b : s.grid_blocks) blocks.push_back(std::to_string(b));
    for (const AblationRun& r : s.ablations) {
      if (r.grid_switch < 0) continue;
      grid[r.grid_switch].push_back(r.result.splits.front().layers[gi].spearman - il[gi].spearman);
    }
    plots.push_back(HeatMap(grid, s.grid_switches, blocks,
                            "delta Spearman at layer " + LayerTick(il[gi]) + " (last scored), " +
                                s.task + " " + s.split,
                            "ablated block", "switch", plot_dir, "ablation-grid"));
  }
  RecordPlots(plots, written, plot_names, messages);
  const std::filesystem::path md = out_dir / "ablation.md";
  WriteText(AblationMarkdown(s, plot_names), md);
  written.push_back(md);
  return written;
}

}  // namespace rwkv_embed::report
