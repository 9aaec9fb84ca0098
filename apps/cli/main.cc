// rwkv-embed: sentence embeddings from RWKV-6 checkpoints. See README.md for the commands.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <vector>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  namespace cli = rwkv_embed::cli;
  CLI::App app{"rwkv-embed: sentence embeddings from RWKV-6 language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("rwkv-embed ") + RWKV_EMBED_VERSION);

  const std::vector<cli::Command> commands = {
      cli::RegisterEmbed(app),     cli::RegisterTokenize(app), cli::RegisterInitModel(app),
      cli::RegisterBench(app),     cli::RegisterInfo(app),     cli::RegisterEval(app),
      cli::RegisterReproduce(app), cli::RegisterConvert(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (const auto& c : commands) {
      if (c.app->parsed()) return c.run();
    }
  } catch (const std::exception& e) {
    std::cerr << "rwkv-embed: error: " << e.what() << "\n";
    return rwkv_embed::ExitCodeFor(e);
  }
  return 1;
}
