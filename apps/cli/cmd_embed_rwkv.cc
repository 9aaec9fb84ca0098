#include <cstdio>

#include "core/error.h"
#include "embed_rwkv_args.h"
#include "model/state_file.h"

namespace rwkv_embed::cli {

void AddEmbeddingRwkvOptions(CLI::App* sub, EmbeddingRwkvArgs& a) {
  const char* group = "EmbeddingRWKV (checkpoints with head.*_head tensors)";
  sub->add_option("--head", a.head,
                  "task head: cls | sts | retr (default: the --task's head, else retr)")
      ->group(group);
  sub->add_option("--eos-mode", a.eos_mode,
                  "single (text + EOS) | echo (text repeated or chunked, 4 EOS) | eval (echo "
                  "left-padded with token 261 to a multiple of 16: what the published MTEB "
                  "numbers ran)")
      ->capture_default_str()
      ->group(group);
  sub->add_option("--task", a.task,
                  "MTEB task type (STS, Retrieval, Classification, ...) or task name: picks the "
                  "package's head and instruction")
      ->group(group);
  sub->add_option("--role", a.role,
                  "query | document: for Retrieval/Reranking/InstructionRetrieval tasks only "
                  "queries get the instruction")
      ->capture_default_str()
      ->group(group);
  a.instruction_option =
      sub->add_option("--instruction", a.instruction,
                      "instruction description: each text becomes \"Instruct: DESC\\nQuery: "
                      "TEXT\" (default: the --task's; \"\" for none)")
          ->group(group);
  a.prefix_option = sub->add_option("--prefix", a.prefix,
                                    "text run once before every input text (state reuse: "
                                    "each text continues from the state after it)")
                        ->group(group);
  sub->add_option("--prefix-state", a.prefix_state,
                  "start every text from a state saved with --save-prefix-state")
      ->group(group);
  sub->add_option("--save-prefix-state", a.save_prefix_state,
                  "save the state after --prefix-state and --prefix to FILE (safetensors)")
      ->group(group);
}

bool UseEmbeddingRwkv(const EmbeddingRwkvArgs& a, const std::filesystem::path& model) {
  const bool backbone = a.layers_option->count() > 0 || a.pooling_option->count() > 0;
  const bool heads = !backbone && HasEmbeddingRwkvHeads(model);
  const bool specific = !a.head.empty() || !a.task.empty() || a.instruction_option->count() > 0 ||
                        a.prefix_option->count() > 0 || !a.prefix_state.empty() ||
                        !a.save_prefix_state.empty();
  if (specific && !heads) {
    throw UsageError(
        backbone ? "--head/--task/--instruction/--prefix* give EmbeddingRWKV head embeddings; "
                   "they cannot be combined with --layers/--pooling (backbone hidden states)"
                 : "--head/--task/--instruction/--prefix* need an EmbeddingRWKV checkpoint "
                   "(head.*_head tensors); " +
                       model.string() + " has none");
  }
  ParseEosMode(a.eos_mode);  // bad values are usage errors whichever path runs
  if (!a.head.empty()) ParseEmbeddingRwkvHead(a.head);
  return heads;
}

std::unique_ptr<EmbeddingRwkvEmbedder> LoadEmbeddingRwkv(const EmbeddingRwkvArgs& a,
                                                         const std::filesystem::path& model,
                                                         const std::filesystem::path& vocab,
                                                         RwkvEmbedderOptions options,
                                                         const LoadOptions& load) {
  EmbeddingRwkvOptions o;
  o.eos_mode = ParseEosMode(a.eos_mode);
  if (a.role != "query" && a.role != "document") {
    throw UsageError("--role '" + a.role + "': expected query or document");
  }
  if (!a.task.empty()) {
    const TaskInstruction& t = FindTaskInstruction(a.task);
    o.head = HeadForTaskType(t.type);
    if (a.role == "query" || InstructsDocuments(t.type)) o.instruction = t.description;
  }
  if (!a.head.empty()) o.head = ParseEmbeddingRwkvHead(a.head);
  if (a.instruction_option->count() > 0) o.instruction = a.instruction;
  if (!a.save_prefix_state.empty() && a.prefix_option->count() == 0) {
    throw UsageError("--save-prefix-state saves the state after --prefix; give --prefix");
  }
  auto embedder = EmbeddingRwkvEmbedder::Load(model, vocab, std::move(options), o, load);
  if (!a.prefix_state.empty()) {
    embedder->options().prefix_state =
        LoadSequenceState(a.prefix_state, embedder->backbone().model());
  }
  if (a.prefix_option->count() > 0) {
    int64_t tokens = 0;
    embedder->options().prefix_state = embedder->PrefixState(a.prefix, &tokens);
    if (!a.save_prefix_state.empty()) {
      SaveSequenceState(a.save_prefix_state, embedder->backbone().model(),
                        embedder->options().prefix_state, tokens);
      std::fprintf(stderr, "embed: state after the %lld-token prefix saved to %s\n",
                   static_cast<long long>(tokens), a.save_prefix_state.c_str());
    }
  }
  return embedder;
}

}  // namespace rwkv_embed::cli
