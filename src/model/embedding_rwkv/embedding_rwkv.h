// EmbeddingRWKV (howard-hou/EmbeddingRWKV, PyPI rwkv-emb; docs/design.md#embeddingrwkv): an RWKV-7
// backbone under `rwkv.` plus three task heads `head.{cls,sts,retr}_head.{fc1,fc2,norm}`. This file
// is its weight schema (the head tensors), its input preprocessing (EOS 65535, the single / echo /
// eval modes) and its instruction table; model/embedding_rwkv/embedding_rwkv_embedder.h runs it.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"
#include "kernels/gemm.h"
#include "model/sequence_model.h"
#include "model/tensor_reader.h"

namespace rwkv_embed {

// The task heads, in the package's task-id order ([CLS] = 0, [STS] = 1, [RETR] = 2).
enum class EmbeddingRwkvHead { kCls, kSts, kRetr };
EmbeddingRwkvHead ParseEmbeddingRwkvHead(std::string_view name);  // "cls" | "sts" | "retr"
std::string_view EmbeddingRwkvHeadName(EmbeddingRwkvHead head);   // "cls", "sts", "retr"

// How a text's tokens are fed (docs/design.md#embeddingrwkv-tokens):
//   kSingle: ids + [EOS] (the package's encode(text, add_eos=True));
//   kEcho:   the MTEB wrapper's multi-EOS layout, 4 EOS (ctx_len 2048, eos_chunk_size 512);
//   kEval:   kEcho left-padded with token 261 to a multiple of 16: what the published MTEB
//            numbers ran (the training code's CHUNK_LEN padding, kept by rwkv-emb.c).
enum class EosMode { kSingle, kEcho, kEval };
EosMode ParseEosMode(std::string_view name);  // "single" | "echo" | "eval"
std::string_view EosModeName(EosMode mode);

inline constexpr int32_t kEmbeddingRwkvEos = 65535;  // not a vocabulary entry
inline constexpr int32_t kEmbeddingRwkvAlignToken = 261;
inline constexpr int64_t kEmbeddingRwkvAlign = 16;      // training CHUNK_LEN
inline constexpr int64_t kEmbeddingRwkvCtxLen = 2048;   // run_mteb*.sh --ctx_len
inline constexpr int64_t kEmbeddingRwkvEosChunk = 512;  // run_mteb*.sh --eos_chunk_size

// The ids fed for one text and where its EOS tokens are (the positions pooled).
struct EosSequence {
  std::vector<int32_t> ids;
  std::vector<int64_t> eos_positions;
};
// `tokens`: the text's tokenizer ids, without EOS.
EosSequence BuildEosSequence(std::span<const int32_t> tokens, EosMode mode);

// One row of the package's instruction table (embedding/eval/src/task_instruct.py and
// task_tag.py): an MTEB task type, or a task with its own description (then `type` is its type).
struct TaskInstruction {
  std::string_view task;         // "STS", "Retrieval", ..., or "QuoraRetrieval", ...
  std::string_view type;         // the MTEB task type
  std::string_view description;  // what goes after "Instruct: "
};
std::span<const TaskInstruction> TaskInstructions();
// The head a task type uses (task_tag.py); UsageError for an unknown type.
EmbeddingRwkvHead HeadForTaskType(std::string_view type);
// Whether documents (not only queries) get the instruction: every type but the [RETR] ones.
bool InstructsDocuments(std::string_view type);
// The row for `task` (exact name); UsageError listing the task types when there is none.
const TaskInstruction& FindTaskInstruction(std::string_view task);
// "Instruct: {description}\nQuery: {text}"; `text` unchanged when the description is empty or
// the text already holds "Instruct:" (the package's guard against a double instruction).
std::string ApplyInstruction(std::string_view description, std::string_view text);

// Whether the checkpoint has EmbeddingRWKV task heads (any `head.*_head.fc1.weight`).
bool HasEmbeddingRwkvHeads(const TensorStore& store);
bool HasEmbeddingRwkvHeads(const std::filesystem::path& model_path);

// The three heads y = LayerNorm(x + fc2(relu(fc1(x)))), eps 1e-5, fc1/fc2 [C, C] without bias.
class EmbeddingRwkvHeads {
 public:
  // Reads head.{cls,sts,retr}_head.* of the checkpoint at `path`. ShapeError naming a missing or
  // misshapen tensor; NumericError for a NaN/Inf with LoadOptions::check_finite.
  static std::unique_ptr<EmbeddingRwkvHeads> Load(const std::filesystem::path& path,
                                                  int64_t hidden_size,
                                                  const LoadOptions& options = {});

  int64_t hidden_size() const { return C_; }
  // out[rows, C] = head(x[rows, C]); x and out may not alias.
  void Apply(EmbeddingRwkvHead head, const float* x, int64_t rows, float* out) const;
  std::optional<std::string> FindNonFiniteWeight() const { return used_.FirstNonFinite(); }

 private:
  EmbeddingRwkvHeads() = default;

  struct Head {
    kernels::WeightMatrix fc1, fc2;
    LayerNormWeights norm;
  };
  TensorStore store_;
  int64_t C_ = 0;
  std::array<Head, 3> heads_;
  std::vector<AlignedVector<std::byte>> owned_;
  UsedTensors used_;
};

}  // namespace rwkv_embed
