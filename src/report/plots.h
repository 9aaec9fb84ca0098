// Per-layer and cost plots as SVG, drawn by gnuplot (Debian gnuplot-nox, in scripts/setup.sh) run
// as a subprocess on a generated script. Every plot leaves its data (.dat) and script (.gp)
// beside the SVG, so it can be redrawn or restyled offline; without gnuplot those two files are
// still written and the result says so instead of failing.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "report/report.h"

namespace rwkv_embed::report {

struct PlotFiles {
  std::filesystem::path svg, script, data;
  bool rendered = false;
  std::string message;  // why it was not rendered, or gnuplot's complaint
};

// Records plots a report wrote: each one's data, script and (when rendered) SVG in `written`,
// the SVG as "plots/<name>" in `plot_names` for the Markdown, and each unrendered plot's message
// in `messages` (when not null).
void RecordPlots(const std::vector<PlotFiles>& plots, std::vector<std::filesystem::path>& written,
                 std::vector<std::string>& plot_names, std::vector<std::string>* messages);

// Whether `gnuplot` (or $RWKV_EMBED_GNUPLOT) runs.
bool GnuplotAvailable();

// Runs gnuplot on `script`; returns "" on success, else a message (absent program, exit status
// and stderr). A non-empty `output` (a file name relative to the script's folder) replaces the
// script's default <stem>.svg.
std::string RunGnuplot(const std::filesystem::path& script, const std::string& output = "");

// For plots defined elsewhere (e.g. report/layer_analysis.cc): writes <stem>.dat and <stem>.gp
// into out_dir and draws <stem>.svg as the plots here are drawn. The script must set its output
// with PlotOutputLines(stem); GnuplotQuote makes a gnuplot string literal.
PlotFiles DrawPlot(const std::filesystem::path& out_dir, const std::string& stem,
                   const std::string& data, const std::string& script);
std::string PlotOutputLines(const std::string& stem);
std::string GnuplotQuote(const std::string& s);

// Spearman with its 95% CI against layer (our numbering on x, HF index in the tick labels) for
// each split of the layered methods (RWKV, random control), and each single-layer baseline
// (GloVe, SIF) as a horizontal line per split. Writes <stem>.{dat,gp,svg} into out_dir.
PlotFiles PlotLayerSweep(const TaskResults& task, const std::vector<std::string>& splits,
                         const std::filesystem::path& out_dir, const std::string& stem);

// Time per pair (log scale) and peak RSS per method on one split, side by side.
PlotFiles PlotCosts(const TaskResults& task, const std::string& split,
                    const std::filesystem::path& out_dir, const std::string& stem);

}  // namespace rwkv_embed::report
