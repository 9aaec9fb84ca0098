// A restricted reader for the pickle program inside a PyTorch checkpoint (`data.pkl`). A pickle
// is code for a small stack machine that may import and call anything; this reader executes
// nothing. It interprets the opcodes of protocols 2-5 that a state dict needs (containers,
// scalars, strings, memo, persistent ids) and accepts exactly these globals:
//   collections.OrderedDict                       (called with no arguments: an empty dict)
//   torch._utils._rebuild_tensor_v2 / _rebuild_tensor   (a tensor description, never built)
//   torch._utils._rebuild_parameter               (its tensor argument)
//   torch.<Type>Storage                           (only inside a ('storage', ...) persistent id)
// Any other global, any other opcode, or a call of an accepted global with other arguments is a
// FormatError naming the source, the global or opcode, and its byte offset. Sizes are bounded
// (program length, value count, stack, marks, memo) so a hostile file cannot exhaust memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace rwkv_embed {

enum class PickleKind : uint8_t {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kGlobal,   // an accepted global not (yet) called; text = "module.name"
  kStorage,  // a persistent id ('storage', type, key, location, numel); integer = storages() index
  kTensor,   // a _rebuild_tensor_v2 call; integer = tensors() index
};

// One value. Containers refer to other values by index into PickleProgram::values(); a dict's
// items are key, value, key, value, ... in insertion order. Values may be shared (the memo) and
// may even form cycles, so walkers must bound their depth.
struct PickleValue {
  PickleKind kind = PickleKind::kNone;
  int64_t integer = 0;  // kBool, kInt; the index for kStorage and kTensor
  double real = 0;      // kFloat
  std::string text;     // kString (UTF-8), kBytes, kGlobal
  std::vector<uint32_t> items;
};

struct PickleStorage {
  std::string key;             // the archive entry data/<key>
  std::string type;            // "torch.BFloat16Storage"
  std::optional<DType> dtype;  // nullopt for storage types rwkv-embed cannot hold
  int64_t numel = 0;
};

struct PickleTensor {
  uint32_t storage = 0;  // index into storages()
  int64_t offset = 0;    // in elements
  std::vector<int64_t> shape, stride;
};

class PickleProgram {
 public:
  // Upper bounds on what a program may build; far above any real state dict (a 7B model's
  // data.pkl is ~100 KB and ~10k values).
  static constexpr size_t kMaxProgramBytes = size_t{64} << 20;
  static constexpr size_t kMaxValues = size_t{1} << 20;
  static constexpr size_t kMaxStack = size_t{1} << 20;
  static constexpr size_t kMaxMemo = size_t{4} << 20;
  static constexpr size_t kMaxDims = 64;

  // Interprets `program`; `source` names it in messages (e.g. "'model.pth' entry
  // 'archive/data.pkl'"). Throws FormatError naming source, opcode or global, and byte offset.
  static PickleProgram Run(std::span<const std::byte> program, const std::string& source);

  uint32_t root() const { return root_; }
  const PickleValue& value(uint32_t i) const { return values_[i]; }
  size_t size() const { return values_.size(); }  // number of values
  const std::vector<PickleStorage>& storages() const { return storages_; }
  const std::vector<PickleTensor>& tensors() const { return tensors_; }

 private:
  friend class PickleMachine;
  std::vector<PickleValue> values_;
  std::vector<PickleStorage> storages_;
  std::vector<PickleTensor> tensors_;
  uint32_t root_ = 0;
};

}  // namespace rwkv_embed
