#include "io/pickle.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "core/utf8.h"

namespace rwkv_embed {
namespace {

// The opcodes this reader interprets (Python's Lib/pickletools.py has the full list).
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kShortBinBytes = 'C',
  kBinBytes = 'B',
  kBinFloat = 'G',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinUnicode = 'X',
  kEmptyList = ']',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kSetItems = 'u',
  kEmptyDict = '}',
  kEmptyTuple = ')',
  kProto = 0x80,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

constexpr uint32_t kUnset = std::numeric_limits<uint32_t>::max();
constexpr size_t kMaxItems = size_t{8} << 20;  // container elements, all containers together
constexpr size_t kMaxGlobalName = 256;

constexpr std::string_view kOrderedDict = "collections.OrderedDict";
constexpr std::string_view kRebuildTensorV2 = "torch._utils._rebuild_tensor_v2";
constexpr std::string_view kRebuildTensor = "torch._utils._rebuild_tensor";
constexpr std::string_view kRebuildParameter = "torch._utils._rebuild_parameter";
constexpr std::string_view kAccepted =
    "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_tensor, "
    "torch._utils._rebuild_parameter and torch.*Storage";

// torch's typed storages by class name; other torch.*Storage names are accepted by the reader
// but give tensors of an unsupported dtype (an error naming the tensor).
std::optional<DType> StorageDType(std::string_view name) {
  static constexpr std::pair<std::string_view, DType> kTypes[] = {
      {"FloatStorage", DType::kF32}, {"DoubleStorage", DType::kF64},
      {"HalfStorage", DType::kF16},  {"BFloat16Storage", DType::kBF16},
      {"LongStorage", DType::kI64},  {"IntStorage", DType::kI32},
      {"ShortStorage", DType::kI16}, {"CharStorage", DType::kI8},
      {"ByteStorage", DType::kU8},   {"BoolStorage", DType::kBool}};
  for (const auto& [n, t] : kTypes) {
    if (n == name) return t;
  }
  return std::nullopt;
}

bool IsStorageType(std::string_view module, std::string_view name) {
  return module == "torch" && name.size() > 7 && name.ends_with("Storage") &&
         name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") ==
             std::string_view::npos;
}

// Untrusted text for a message: at most 80 bytes, non-printable bytes as \xNN.
std::string Printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    }
  }
  return s.size() > 80 ? out + "..." : out;
}

std::string OpName(uint8_t op) {
  std::string s = "opcode 0x";
  static constexpr char kHex[] = "0123456789abcdef";
  s += kHex[op >> 4];
  s += kHex[op & 15];
  if (op >= 0x21 && op < 0x7f) s += std::string(" ('") + static_cast<char>(op) + "')";
  return s;
}

}  // namespace

// The stack machine. Values live in PickleProgram::values_; the stack and memo hold indices.
class PickleMachine {
 public:
  PickleMachine(std::span<const std::byte> program, const std::string& source, PickleProgram& out)
      : p_(program), source_(source), out_(out) {}

  void Run() {
    if (p_.size() > PickleProgram::kMaxProgramBytes) {
      throw FormatError(source_ + ": pickle of " + std::to_string(p_.size()) +
                        " bytes exceeds the limit of " +
                        std::to_string(PickleProgram::kMaxProgramBytes));
    }
    while (true) {
      op_pos_ = pos_;
      if (pos_ >= p_.size()) Fail("the pickle ends without a STOP opcode (truncated?)");
      const auto op = static_cast<uint8_t>(p_[pos_++]);
      if (op == kStop) break;
      Step(op);
    }
    if (stack_.size() <= Fence()) Fail("STOP with an empty stack");
    out_.root_ = stack_.back();
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw FormatError(source_ + ": " + what + " at byte " + std::to_string(op_pos_));
  }

  // ---- reading the program
  std::span<const std::byte> Take(uint64_t n) {
    if (n > p_.size() - pos_) Fail("the pickle ends inside an opcode's argument (truncated?)");
    const auto s = p_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t ReadLe(size_t n) {
    uint64_t v = 0;
    const auto b = Take(n);
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
    return v;
  }
  std::string_view ReadText(uint64_t n) {
    const auto b = Take(n);
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  std::string_view ReadLine() {
    for (size_t i = pos_; i < p_.size() && i - pos_ <= kMaxGlobalName; ++i) {
      if (p_[i] == std::byte{'\n'}) {
        const std::string_view line = ReadText(i - pos_);
        ++pos_;
        return line;
      }
    }
    Fail("GLOBAL without a newline-terminated name of at most " + std::to_string(kMaxGlobalName) +
         " bytes");
  }

  // ---- values and the stack
  uint32_t New(PickleValue v) {
    if (out_.values_.size() >= PickleProgram::kMaxValues) {
      Fail("more than " + std::to_string(PickleProgram::kMaxValues) + " values");
    }
    out_.values_.push_back(std::move(v));
    return static_cast<uint32_t>(out_.values_.size() - 1);
  }
  uint32_t NewScalar(PickleKind kind, int64_t integer) {
    PickleValue v;
    v.kind = kind;
    v.integer = integer;
    return New(std::move(v));
  }
  uint32_t NewContainer(PickleKind kind, std::vector<uint32_t> items) {
    CountItems(items.size());
    PickleValue v;
    v.kind = kind;
    v.items = std::move(items);
    return New(std::move(v));
  }
  void CountItems(size_t n) {
    items_ += n;
    if (items_ > kMaxItems) Fail("more than " + std::to_string(kMaxItems) + " container items");
  }
  PickleValue& At(uint32_t i) { return out_.values_[i]; }
  size_t Fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void Push(uint32_t v) {
    if (stack_.size() >= PickleProgram::kMaxStack) Fail("stack deeper than the limit");
    stack_.push_back(v);
  }
  uint32_t Pop() {
    if (stack_.size() <= Fence()) Fail("stack underflow");
    const uint32_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  uint32_t Top() {
    if (stack_.size() <= Fence()) Fail("stack underflow");
    return stack_.back();
  }
  std::vector<uint32_t> PopMark() {
    if (marks_.empty()) Fail("no MARK on the stack");
    std::vector<uint32_t> items(stack_.begin() + static_cast<ptrdiff_t>(marks_.back()),
                                stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  std::vector<uint32_t> PopN(size_t n) {
    std::vector<uint32_t> items(n);
    for (size_t i = n; i-- > 0;) items[i] = Pop();
    return items;
  }
  // The container on top of the stack, which must be of `kind`, for APPEND(S)/SETITEM(S).
  PickleValue& Target(PickleKind kind, const char* what) {
    PickleValue& v = At(Top());
    if (v.kind != kind)
      Fail(std::string(what) + " on a value that is not a " +
           (kind == PickleKind::kDict ? "dict" : "list"));
    return v;
  }

  // ---- opcodes
  void Step(uint8_t op) {
    switch (op) {
      case kProto:
        if (const uint64_t v = ReadLe(1); v > 5)
          Fail("unsupported pickle protocol " + std::to_string(v));
        return;
      case kFrame:
        ReadLe(8);  // frames only group opcodes; the bytes follow as usual
        return;
      case kMark:
        if (marks_.size() >= PickleProgram::kMaxStack) Fail("too many MARKs");
        marks_.push_back(stack_.size());
        return;
      case kPop:
        Pop();
        return;
      case kPopMark:
        PopMark();
        return;
      case kDup:
        Push(Top());
        return;
      case kNone:
        return Push(NewScalar(PickleKind::kNone, 0));
      case kNewTrue:
      case kNewFalse:
        return Push(NewScalar(PickleKind::kBool, op == kNewTrue ? 1 : 0));
      case kBinInt:
        return Push(NewScalar(PickleKind::kInt, static_cast<int32_t>(ReadLe(4))));
      case kBinInt1:
        return Push(NewScalar(PickleKind::kInt, static_cast<int64_t>(ReadLe(1))));
      case kBinInt2:
        return Push(NewScalar(PickleKind::kInt, static_cast<int64_t>(ReadLe(2))));
      case kLong1:
        return Push(NewScalar(PickleKind::kInt, ReadLong1()));
      case kBinFloat:
        return Push(ReadFloat());
      case kBinUnicode:
        return Push(NewString(ReadText(ReadLe(4))));
      case kShortBinUnicode:
        return Push(NewString(ReadText(ReadLe(1))));
      case kBinUnicode8:
        return Push(NewString(ReadText(ReadLe(8))));
      case kBinBytes:
        return Push(NewBytes(ReadText(ReadLe(4))));
      case kShortBinBytes:
        return Push(NewBytes(ReadText(ReadLe(1))));
      case kBinBytes8:
        return Push(NewBytes(ReadText(ReadLe(8))));
      default:
        return StepContainerOrCall(op);
    }
  }

  void StepContainerOrCall(uint8_t op) {
    switch (op) {
      case kEmptyTuple:
        return Push(NewContainer(PickleKind::kTuple, {}));
      case kTuple:
        return Push(NewContainer(PickleKind::kTuple, PopMark()));
      case kTuple1:
      case kTuple2:
      case kTuple3:
        return Push(NewContainer(PickleKind::kTuple, PopN(op - kTuple1 + 1)));
      case kEmptyList:
        return Push(NewContainer(PickleKind::kList, {}));
      case kList:
        return Push(NewContainer(PickleKind::kList, PopMark()));
      case kEmptyDict:
        return Push(NewContainer(PickleKind::kDict, {}));
      case kDict:
        return Push(NewDict(PopMark()));
      case kAppend: {
        const uint32_t v = Pop();
        return Append(Target(PickleKind::kList, "APPEND"), {v});
      }
      case kAppends: {
        const std::vector<uint32_t> items = PopMark();
        return Append(Target(PickleKind::kList, "APPENDS"), items);
      }
      case kSetItem: {
        const std::vector<uint32_t> kv = PopN(2);
        return SetItems(kv);
      }
      case kSetItems:
        return SetItems(PopMark());
      default:
        return StepMemoOrCall(op);
    }
  }

  void StepMemoOrCall(uint8_t op) {
    switch (op) {
      case kBinPut:
        return Put(ReadLe(1));
      case kLongBinPut:
        return Put(ReadLe(4));
      case kMemoize:
        return Put(memo_count_);
      case kBinGet:
        return Get(ReadLe(1));
      case kLongBinGet:
        return Get(ReadLe(4));
      case kGlobal: {
        const std::string module(ReadLine());
        return Push(NewGlobal(module, ReadLine()));
      }
      case kStackGlobal: {
        const uint32_t name = Pop(), module = Pop();
        if (At(name).kind != PickleKind::kString || At(module).kind != PickleKind::kString) {
          Fail("STACK_GLOBAL with non-string operands");
        }
        return Push(NewGlobal(At(module).text, At(name).text));
      }
      case kReduce:
        return Reduce();
      case kBuild:
        return Build();
      case kBinPersId:
        return Push(PersistentId(Pop()));
      default:
        Fail("unsupported " + OpName(op) +
             " (the pickle is never executed; only the opcodes of a plain state dict are read)");
    }
  }

  int64_t ReadLong1() {
    const uint64_t n = ReadLe(1);
    if (n > 8) Fail("LONG1 integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    uint64_t v = ReadLe(n);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) != 0) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  uint32_t ReadFloat() {
    uint64_t bits = 0;
    for (std::byte b : Take(8)) bits = (bits << 8) | static_cast<uint64_t>(b);  // big-endian
    PickleValue v;
    v.kind = PickleKind::kFloat;
    v.real = std::bit_cast<double>(bits);
    return New(std::move(v));
  }
  uint32_t NewString(std::string_view s) {
    if (!IsValidUtf8(s)) Fail("string is not valid UTF-8");
    PickleValue v;
    v.kind = PickleKind::kString;
    v.text = s;
    return New(std::move(v));
  }
  uint32_t NewBytes(std::string_view s) {
    PickleValue v;
    v.kind = PickleKind::kBytes;
    v.text = s;
    return New(std::move(v));
  }
  uint32_t NewDict(const std::vector<uint32_t>& kv) {
    const uint32_t d = NewContainer(PickleKind::kDict, {});
    Push(d);
    SetItems(kv);
    return Pop();
  }

  void Append(PickleValue& list, const std::vector<uint32_t>& items) {
    CountItems(items.size());
    list.items.insert(list.items.end(), items.begin(), items.end());
  }
  void SetItems(const std::vector<uint32_t>& kv) {
    if (kv.size() % 2 != 0) Fail("SETITEMS with an odd number of items");
    for (size_t i = 0; i < kv.size(); i += 2) {
      const PickleKind k = At(kv[i]).kind;
      if (k != PickleKind::kString && k != PickleKind::kInt) {
        Fail("dict key that is neither a string nor an integer");
      }
    }
    Append(Target(PickleKind::kDict, "SETITEM"), kv);
  }

  void Put(uint64_t index) {
    if (index >= PickleProgram::kMaxMemo)
      Fail("memo index " + std::to_string(index) + " beyond the limit");
    if (index >= memo_.size()) memo_.resize(index + 1, kUnset);
    if (memo_[index] == kUnset) ++memo_count_;
    memo_[index] = Top();
  }
  void Get(uint64_t index) {
    if (index >= memo_.size() || memo_[index] == kUnset) {
      Fail("memo index " + std::to_string(index) + " read before it was written");
    }
    Push(memo_[index]);
  }

  uint32_t NewGlobal(std::string_view module, std::string_view name) {
    const std::string full = std::string(module) + "." + std::string(name);
    if (full != kOrderedDict && full != kRebuildTensorV2 && full != kRebuildTensor &&
        full != kRebuildParameter && !IsStorageType(module, name)) {
      Fail("forbidden global '" + Printable(full) + "' (the pickle is never executed; only " +
           std::string(kAccepted) + " are accepted)");
    }
    PickleValue v;
    v.kind = PickleKind::kGlobal;
    v.text = full;
    return New(std::move(v));
  }

  void Reduce() {
    const uint32_t args_index = Pop();
    const uint32_t callable = Pop();
    const PickleValue& f = At(callable);
    if (f.kind != PickleKind::kGlobal) Fail("REDUCE of a value that is not a callable global");
    if (At(args_index).kind != PickleKind::kTuple)
      Fail("REDUCE with arguments that are not a tuple");
    const std::vector<uint32_t> args = At(args_index).items;  // copy: New() may reallocate
    const std::string name = f.text;
    if (name == kOrderedDict && args.empty()) return Push(NewContainer(PickleKind::kDict, {}));
    if (name == kRebuildTensorV2 || name == kRebuildTensor) return Push(RebuildTensor(args, name));
    if (name == kRebuildParameter && args.size() == 3 && At(args[0]).kind == PickleKind::kTensor &&
        At(args[1]).kind == PickleKind::kBool) {
      return Push(args[0]);
    }
    Fail("call of " + Printable(name) + " with unsupported arguments");
  }

  // BUILD sets an object's attributes; on an OrderedDict that is the `_metadata` a module's
  // state_dict() carries. It is not a tensor, so it is dropped.
  void Build() {
    Pop();
    if (At(Top()).kind != PickleKind::kDict) Fail("BUILD on a value that is not a dict");
  }

  uint32_t PersistentId(uint32_t pid) {
    const PickleValue& t = At(pid);
    const auto& it = t.items;
    if (t.kind != PickleKind::kTuple || it.size() != 5 || At(it[0]).kind != PickleKind::kString ||
        At(it[0]).text != "storage" || At(it[1]).kind != PickleKind::kGlobal ||
        At(it[2]).kind != PickleKind::kString || At(it[4]).kind != PickleKind::kInt ||
        At(it[4]).integer < 0) {
      Fail("persistent id is not ('storage', torch.<Type>Storage, key, location, numel)");
    }
    const std::string& type = At(it[1]).text;
    if (!type.starts_with("torch.") || !type.ends_with("Storage")) {
      Fail("persistent id names '" + Printable(type) + "', which is not a storage type");
    }
    PickleStorage s;
    s.key = At(it[2]).text;
    s.type = type;
    s.dtype = StorageDType(std::string_view(type).substr(6));
    s.numel = At(it[4]).integer;
    out_.storages_.push_back(std::move(s));
    return NewScalar(PickleKind::kStorage, static_cast<int64_t>(out_.storages_.size() - 1));
  }

  std::vector<int64_t> IntTuple(uint32_t index, const char* what) {
    const PickleValue& v = At(index);
    if (v.kind != PickleKind::kTuple || v.items.size() > PickleProgram::kMaxDims) {
      Fail(std::string("tensor ") + what + " is not a tuple of at most " +
           std::to_string(PickleProgram::kMaxDims) + " integers");
    }
    std::vector<int64_t> out;
    for (uint32_t i : v.items) {
      if (At(i).kind != PickleKind::kInt)
        Fail(std::string("tensor ") + what + " holds a non-integer");
      out.push_back(At(i).integer);
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
  // [, metadata]) and the older _rebuild_tensor(storage, storage_offset, size, stride).
  uint32_t RebuildTensor(const std::vector<uint32_t>& args, const std::string& name) {
    const bool v2 = name == kRebuildTensorV2;
    const bool arity_ok = v2 ? (args.size() == 6 || args.size() == 7) : args.size() == 4;
    if (!arity_ok || At(args[0]).kind != PickleKind::kStorage ||
        At(args[1]).kind != PickleKind::kInt) {
      Fail("call of " + name + " with unsupported arguments");
    }
    if (v2 && (At(args[4]).kind != PickleKind::kBool || At(args[5]).kind != PickleKind::kDict ||
               (args.size() == 7 && At(args[6]).kind != PickleKind::kNone &&
                At(args[6]).kind != PickleKind::kDict))) {
      Fail("call of " + name + " with unsupported arguments");
    }
    PickleTensor t;
    t.storage = static_cast<uint32_t>(At(args[0]).integer);
    t.offset = At(args[1]).integer;
    t.shape = IntTuple(args[2], "size");
    t.stride = IntTuple(args[3], "stride");
    if (t.shape.size() != t.stride.size()) Fail("tensor size and stride differ in length");
    out_.tensors_.push_back(std::move(t));
    return NewScalar(PickleKind::kTensor, static_cast<int64_t>(out_.tensors_.size() - 1));
  }

  std::span<const std::byte> p_;
  const std::string& source_;
  PickleProgram& out_;
  size_t pos_ = 0, op_pos_ = 0;
  size_t items_ = 0;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::vector<uint32_t> memo_;
  uint64_t memo_count_ = 0;  // entries set: MEMOIZE's index, as len(memo) in Python
};

PickleProgram PickleProgram::Run(std::span<const std::byte> program, const std::string& source) {
  PickleProgram out;
  PickleMachine(program, source, out).Run();
  return out;
}

}  // namespace rwkv_embed
