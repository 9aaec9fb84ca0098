#include "report/plots.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"

namespace rwkv_embed::report {
namespace {

// Paired colours per split (colour-blind safe, Okabe-Ito).
const char* const kSplitColours[] = {"#0072B2", "#D55E00", "#009E73",
                                     "#CC79A7", "#E69F00", "#56B4E9"};

std::string GnuplotProgram() {
  const char* env = std::getenv("RWKV_EMBED_GNUPLOT");
  return env != nullptr && *env != '\0' ? env : "gnuplot";
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// A gnuplot double-quoted string literal.
std::string GpString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string Num(double v) {
  if (!std::isfinite(v)) return "NaN";  // gnuplot skips NaN points (this is a data file, not JSON)
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

// The script's output: <stem>.svg, unless the caller sets `outfile` (gnuplot -e), as Finish does
// to draw into a .partial that is renamed when gnuplot succeeded.
std::string OutputLines(const std::string& stem) {
  return "if (!exists('outfile')) outfile = '" + stem + ".svg'\nset output outfile\n";
}

// Runs a shell command, returning its exit status and combined output.
int Capture(const std::string& command, std::string* output) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[512];
  while (fgets(buf, sizeof(buf), p) != nullptr) output->append(buf);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

PlotFiles Finish(const std::filesystem::path& out_dir, const std::string& stem,
                 const std::string& data, const std::string& script) {
  PlotFiles f;
  f.data = out_dir / (stem + ".dat");
  f.script = out_dir / (stem + ".gp");
  f.svg = out_dir / (stem + ".svg");
  WriteText(data, f.data);
  WriteText(script, f.script);
  if (!GnuplotAvailable()) {
    f.message = "gnuplot (" + GnuplotProgram() + ") is not available: wrote " + f.data.string() +
                " and " + f.script.string() + "; run `gnuplot " + stem +
                ".gp` in that folder to draw " + stem + ".svg";
    return f;
  }
  // Drawn into .partial and renamed: a failed or killed gnuplot never leaves a truncated SVG.
  PartialFile svg(f.svg);
  f.message = RunGnuplot(f.script, svg.path().filename().string());
  if (f.message.empty() && std::filesystem::exists(svg.path())) {
    svg.Commit();
    f.rendered = true;
  } else if (f.message.empty()) {
    f.message = "gnuplot wrote no " + svg.path().string();
  }
  return f;
}

}  // namespace

bool GnuplotAvailable() {
  std::string out;
  return Capture(ShellQuote(GnuplotProgram()) + " --version", &out) == 0;
}

std::string RunGnuplot(const std::filesystem::path& script, const std::string& output) {
  const std::filesystem::path dir =
      script.has_parent_path() ? script.parent_path() : std::filesystem::path(".");
  std::string out;
  // Scripts name their files relative to their own folder, so the folder can be moved.
  const std::string set_output =
      output.empty() ? "" : " -e " + ShellQuote("outfile = " + GpString(output));
  const int rc = Capture("cd " + ShellQuote(dir.string()) + " && " + ShellQuote(GnuplotProgram()) +
                             set_output + " " + ShellQuote(script.filename().string()),
                         &out);
  if (rc == 0) return "";
  return "gnuplot failed on " + script.string() + " (exit " + std::to_string(rc) + "): " + out;
}

PlotFiles DrawPlot(const std::filesystem::path& out_dir, const std::string& stem,
                   const std::string& data, const std::string& script) {
  return Finish(out_dir, stem, data, script);
}
std::string PlotOutputLines(const std::string& stem) { return OutputLines(stem); }
std::string GnuplotQuote(const std::string& s) { return GpString(s); }

namespace {

// The HF hidden_states index of our layer `layer` when every layered method that has the layer
// gives it the same one (models of one architecture); nullopt otherwise (none has one, or RWKV-6
// beside RWKV-7), and the tick shows only our index.
std::optional<int> CommonHfIndex(const TaskResults& task, int layer) {
  std::optional<int> common;
  bool first = true;
  for (const eval::MethodResult& m : task.methods) {
    const LayerInfo* info = m.layered() ? m.FindLayerInfo(layer) : nullptr;
    if (info == nullptr) continue;
    if (!first && common != info->hf_index) return std::nullopt;
    common = info->hf_index;
    first = false;
  }
  return common;
}

}  // namespace

PlotFiles PlotLayerSweep(const TaskResults& task, const std::vector<std::string>& splits,
                         const std::filesystem::path& out_dir, const std::string& stem) {
  std::ostringstream data, plot;
  int index = 0, max_layer = 0;
  for (const eval::MethodResult& m : task.methods) {
    for (const eval::SplitResult& s : m.splits) {
      for (const eval::LayerResult& l : s.layers) max_layer = std::max(max_layer, l.layer);
    }
  }
  const double x0 = -0.5, x1 = max_layer + 0.5;
  // One panel per split; colour and dash per method. The random control is shifted right by a
  // fraction of a layer so its error bars do not hide the model's.
  std::vector<std::vector<std::string>> panels(splits.size());
  for (size_t si = 0; si < splits.size(); ++si) {
    for (size_t mi = 0; mi < task.methods.size(); ++mi) {
      const eval::MethodResult& m = task.methods[mi];
      const eval::SplitResult* s = m.FindSplit(splits[si]);
      if (s == nullptr) continue;
      const std::string colour = kSplitColours[mi % std::size(kSplitColours)];
      data << "# " << m.method << " " << s->split << ": x spearman ci_lo ci_hi\n";
      if (m.layered()) {
        const bool control = !m.control_of.empty();
        const double shift = control ? 0.15 : 0.0;
        for (const eval::LayerResult& l : s->layers) {
          data << Num(l.layer + shift) << " " << Num(l.spearman) << " "
               << Num(std::isfinite(l.spearman_ci.lo) ? l.spearman_ci.lo : l.spearman) << " "
               << Num(std::isfinite(l.spearman_ci.hi) ? l.spearman_ci.hi : l.spearman) << "\n";
        }
        panels[si].push_back("'" + stem + ".dat' index " + std::to_string(index) +
                             " using 1:2:3:4 with yerrorlines lw 2 pt " + (control ? "6" : "7") +
                             " ps 0.8 dt " + (control ? "3" : "1") + " lc rgb '" + colour +
                             "' title " + GpString(m.method));
      } else {
        const eval::LayerResult& l = s->layers.front();
        data << Num(x0) << " " << Num(l.spearman) << " 0 0\n"
             << Num(x1) << " " << Num(l.spearman) << " 0 0\n";
        char v[32];
        std::snprintf(v, sizeof(v), "%.3f", l.spearman);
        panels[si].push_back("'" + stem + ".dat' index " + std::to_string(index) +
                             " using 1:2 with lines lw 2 dt " +
                             (m.method.rfind("glove", 0) == 0 ? "2" : "4") + " lc rgb '" + colour +
                             "' title " + GpString(m.method + " (" + v + ")"));
      }
      data << "\n\n";
      ++index;
    }
  }
  // One y range for every panel, so splits compare at a glance.
  double y_lo = 0, y_hi = 0;
  for (const eval::MethodResult& m : task.methods) {
    for (const eval::SplitResult& s : m.splits) {
      for (const eval::LayerResult& l : s.layers) {
        for (double v : {l.spearman, l.spearman_ci.lo, l.spearman_ci.hi}) {
          if (std::isfinite(v)) y_lo = std::min(y_lo, v), y_hi = std::max(y_hi, v);
        }
      }
    }
  }
  y_lo = std::floor(y_lo * 10 - 0.5) / 10;
  y_hi = std::ceil(y_hi * 10 + 1.5) / 10;  // room for the key
  const size_t n = std::max<size_t>(splits.size(), 1);
  plot << "# Spearman vs. layer for " << task.task << "; drawn from " << stem << ".dat\n"
       << "set terminal svg size " << 80 + 430 * n
       << ",520 dynamic noenhanced font 'Sans,12' background rgb 'white'\n"
       << OutputLines(stem) << "set grid\nset key top right font ',10' samplen 3 opaque box\n"
       << "set bmargin 6\n"
       << "set xrange [" << Num(x0) << ":" << Num(x1) << "]\n"
       << "set yrange [" << Num(y_lo) << ":" << Num(y_hi) << "]\n"
       << "set xlabel 'layer (ours; HF hidden_states index in brackets)' offset 0,-0.5\n"
       << "set ylabel 'Spearman rho (95% bootstrap CI)'\n"
       << "set xtics (";
  for (int l = 0; l <= max_layer; ++l) {
    const std::optional<int> hf = CommonHfIndex(task, l);
    plot << (l ? ", " : "") << "\""
         << (hf ? std::to_string(l) + "\\n(HF " + std::to_string(*hf) + ")" : std::to_string(l))
         << "\" " << l;
  }
  plot << ")\n"
       << "set multiplot layout 1," << n << " title "
       << GpString(task.task +
                   ": Spearman of cosine vs. label per layer; word-vector baselines as lines")
       << "\n";
  for (size_t si = 0; si < splits.size(); ++si) {
    plot << "set title " << GpString(splits[si]) << "\nplot ";
    for (size_t i = 0; i < panels[si].size(); ++i) {
      plot << (i ? ", \\\n     " : "") << panels[si][i];
    }
    plot << "\n";
  }
  plot << "unset multiplot\n";
  return Finish(out_dir, stem, data.str(), plot.str());
}

PlotFiles PlotCosts(const TaskResults& task, const std::string& split,
                    const std::filesystem::path& out_dir, const std::string& stem) {
  std::ostringstream data, plot;
  data << "# " << task.task << " " << split
       << ": index method ms_per_pair peak_rss_mib load_seconds\n";
  int n = 0;
  for (const eval::MethodResult& m : task.methods) {
    const eval::SplitResult* s = m.FindSplit(split);
    if (s == nullptr) continue;
    data << n++ << " " << GpString(m.method) << " " << Num(s->SecondsPerPair() * 1000) << " "
         << Num(s->peak_rss_kib < 0 ? std::nan("") : s->peak_rss_kib / 1024.0) << " "
         << Num(m.load_seconds) << "\n";
  }
  plot << "# Cost per method on " << task.task << " " << split << "; drawn from " << stem
       << ".dat\n"
       << "set terminal svg size 960,460 dynamic noenhanced font 'Sans,12' background rgb "
          "'white'\n"
       << OutputLines(stem)
       << "set style fill solid 0.7 border -1\nset boxwidth 0.6\nset grid ytics\nunset key\n"
       << "set xrange [-0.6:" << n - 0.4 << "]\n"
       << "set multiplot layout 1,2 title "
       << GpString(task.task + " " + split +
                   ": cost per method, each measured "
                   "on its own (CPU)")
       << "\n"
       << "set title 'embedding wall time per pair (ms, log scale)'\n"
       << "set logscale y\nset ylabel 'ms / pair'\n"
       << "plot '" << stem << ".dat' using 1:3:xtic(2) with boxes lc rgb '#0072B2', '' using "
       << "1:3:(sprintf('%.3g', $3)) with labels offset 0,0.8\n"
       << "unset logscale y\nset yrange [0:*]\nset offsets 0, 0, graph 0.1, 0\n"
       << "set title 'peak resident memory (VmHWM, MiB; reset per method)'\n"
       << "set ylabel 'MiB'\n"
       << "plot '" << stem << ".dat' using 1:4:xtic(2) with boxes lc rgb '#D55E00', '' using "
       << "1:4:(sprintf('%.0f', $4)) with labels offset 0,0.8\n"
       << "unset multiplot\n";
  return Finish(out_dir, stem, data.str(), plot.str());
}

void RecordPlots(const std::vector<PlotFiles>& plots, std::vector<std::filesystem::path>& written,
                 std::vector<std::string>& plot_names, std::vector<std::string>* messages) {
  for (const PlotFiles& f : plots) {
    written.push_back(f.data);
    written.push_back(f.script);
    if (f.rendered) {
      written.push_back(f.svg);
      plot_names.push_back("plots/" + f.svg.filename().string());
    } else if (messages != nullptr) {
      messages->push_back(f.message);
    }
  }
}

}  // namespace rwkv_embed::report
