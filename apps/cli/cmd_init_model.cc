#include "commands.h"
#include "core/error.h"

namespace rwkv_embed::cli {

Command RegisterInitModel(CLI::App& app) {
  auto* sub = app.add_subcommand("init-model", "(not implemented yet)");
  return {sub, []() -> int { throw UsageError("not implemented yet"); }};
}

}  // namespace rwkv_embed::cli
