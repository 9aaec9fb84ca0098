#include "commands.h"
#include "core/error.h"

namespace rwkv_embed::cli {

Command RegisterTokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "(not implemented yet)");
  return {sub, []() -> int { throw UsageError("not implemented yet"); }};
}

}  // namespace rwkv_embed::cli
