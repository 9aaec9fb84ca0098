// rwkv-embed: sentence embeddings from RWKV-6 and RWKV-7 checkpoints. See README.md for the
// commands and the exit codes (docs/cli.md#exit-codes; ExitCodeFor in core/error.h).
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/utf8.h"
#ifdef RWKV_EMBED_MPI_BINARY
#include "../mpi/mpi_cli.h"  // rwkv-embed-mpi: the same commands, embed sharded over ranks
#endif

namespace {

constexpr int kUsageExit = 2;

std::string CommandNames(const std::vector<rwkv_embed::cli::Command>& commands) {
  std::string names;
  for (const auto& c : commands) names += (names.empty() ? "" : ", ") + c.app->get_name();
  return names;
}

// Every command-line rejection exits 2 (CLI11's own codes, 105-114, would contradict the README),
// with a message that names the command when the first word is not one.
int ReportParseError(const CLI::ParseError& e,
                     const std::vector<rwkv_embed::cli::Command>& commands, int argc, char** argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  bool known = false;
  for (const auto& c : commands) known = known || c.app->get_name() == first;
  std::cerr << "rwkv-embed: error: ";
  if (first.empty()) {
    std::cerr << "no command given (commands: " << CommandNames(commands) << ")\n";
  } else if (!known && first[0] != '-') {
    std::cerr << "unknown command '" << rwkv_embed::EscapeForMessage(first)
              << "' (commands: " << CommandNames(commands) << ")\n";
  } else {
    std::cerr << rwkv_embed::EscapeForMessage(e.what(), 1000) << "\n";
  }
  std::cerr << "Run 'rwkv-embed --help' or 'rwkv-embed COMMAND --help' for the options.\n";
  return kUsageExit;
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = rwkv_embed::cli;
  CLI::App app{"rwkv-embed: sentence embeddings from RWKV-6, RWKV-7 and EmbeddingRWKV models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("rwkv-embed ") + RWKV_EMBED_VERSION);

  const std::vector<cli::Command> commands = {
      cli::RegisterEmbed(app),     cli::RegisterTokenize(app), cli::RegisterInitModel(app),
      cli::RegisterBench(app),     cli::RegisterInfo(app),     cli::RegisterEval(app),
      cli::RegisterReproduce(app), cli::RegisterConvert(app),  cli::RegisterAblate(app),
      cli::RegisterAnalyze(app),   cli::RegisterServe(app),
  };
#ifdef RWKV_EMBED_MPI_BINARY
  rwkv_embed::mpi::AddMpiOptions(app);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --help-all, --version: exit 0
  } catch (const CLI::ParseError& e) {
    return ReportParseError(e, commands, argc, argv);
  }
  const cli::Command* chosen = nullptr;
  for (const auto& c : commands) {
    if (c.app->parsed()) chosen = &c;
  }
  if (chosen == nullptr) return 1;
  try {
#ifdef RWKV_EMBED_MPI_BINARY
    return rwkv_embed::mpi::RunUnderMpi(chosen->app->get_name(), chosen->run);
#else
    return chosen->run();
#endif
  } catch (const std::bad_alloc&) {
    std::cerr << "rwkv-embed: error: out of memory while running '" << chosen->app->get_name()
              << "' (a smaller input, --batch-tokens or --chunk-sentences may fit)\n";
    return rwkv_embed::kOutOfMemoryExit;
  } catch (const std::exception& e) {
    std::cerr << "rwkv-embed: error: " << e.what() << "\n";
    return rwkv_embed::ExitCodeFor(e);
  }
}
