// Subcommands of the rwkv-embed CLI. Each cmd_*.cc defines one Register* function that adds its
// subcommand (options bound to a heap-held options struct) and returns the action to run when the
// subcommand is chosen. The CLI is a thin front end: all work happens in the library.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace rwkv_embed::cli {

using Action = std::function<int()>;

struct Command {
  CLI::App* app;
  Action run;
};

Command RegisterTokenize(CLI::App& app);
Command RegisterEmbed(CLI::App& app);
Command RegisterInitModel(CLI::App& app);
Command RegisterBench(CLI::App& app);
Command RegisterInfo(CLI::App& app);
Command RegisterEval(CLI::App& app);
Command RegisterReproduce(CLI::App& app);
Command RegisterConvert(CLI::App& app);
Command RegisterAblate(CLI::App& app);
Command RegisterAnalyze(CLI::App& app);
Command RegisterServe(CLI::App& app);

}  // namespace rwkv_embed::cli
