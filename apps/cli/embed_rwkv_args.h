// The EmbeddingRWKV options of `rwkv-embed embed` (cmd_embed_rwkv.cc), kept apart from the
// generic embed options so that cmd_embed.cc holds only their registration and one branch.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "model/embedding_rwkv/embedding_rwkv_embedder.h"

namespace rwkv_embed::cli {

struct EmbeddingRwkvArgs {
  std::string head, eos_mode = "eval", task, role = "query", instruction, prefix, prefix_state,
                    save_prefix_state;
  CLI::Option* instruction_option = nullptr;
  CLI::Option* prefix_option = nullptr;
  CLI::Option* layers_option = nullptr;   // the generic --layers / --pooling, to see whether
  CLI::Option* pooling_option = nullptr;  // the user asked for backbone hidden states
};

// Adds --head, --eos-mode, --task, --role, --instruction, --prefix, --prefix-state,
// --save-prefix-state to `sub`.
void AddEmbeddingRwkvOptions(CLI::App* sub, EmbeddingRwkvArgs& a);

// Whether `embed` gives EmbeddingRWKV head embeddings: the checkpoint has task heads and neither
// --layers nor --pooling was given. UsageError when EmbeddingRWKV options are given otherwise.
bool UseEmbeddingRwkv(const EmbeddingRwkvArgs& a, const std::filesystem::path& model);

// Loads the embedder the options describe: head and instruction resolved from --task/--head/
// --instruction/--role, the prefix state from --prefix-state then --prefix (saved to
// --save-prefix-state when given).
std::unique_ptr<EmbeddingRwkvEmbedder> LoadEmbeddingRwkv(const EmbeddingRwkvArgs& a,
                                                         const std::filesystem::path& model,
                                                         const std::filesystem::path& vocab,
                                                         RwkvEmbedderOptions options,
                                                         const LoadOptions& load);

}  // namespace rwkv_embed::cli
