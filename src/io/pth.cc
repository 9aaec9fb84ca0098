#include "io/pth.h"

#include <cstring>
#include <set>
#include <string>
#include <utility>

#include "core/error.h"
#include "io/pickle.h"
#include "io/zip.h"

namespace rwkv_embed {
namespace {

constexpr int kMaxNesting = 32;            // dict levels; a checkpoint has 1-3
constexpr size_t kMaxNameBytes = 4096;     // a flattened tensor name
constexpr std::string_view kLegacyMagic =  // PROTO 2, LONG1 of torch's 10-byte magic number
    "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

[[noreturn]] void Fail(const std::filesystem::path& file, const std::string& what) {
  throw FormatError("PyTorch checkpoint '" + file.string() + "': " + what);
}

[[noreturn]] void FailTensor(const std::filesystem::path& file, const std::string& name,
                             const std::string& what) {
  Fail(file, "tensor '" + name + "': " + what);
}

std::string Shape(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// The folder every entry lives in, from the one "<prefix>/data.pkl" entry.
std::string FindPrefix(const ZipArchive& zip, const std::filesystem::path& file) {
  std::vector<std::string> found;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.substr(slash) == "/data.pkl") {
      found.push_back(e.name.substr(0, slash));
    }
  }
  if (found.empty()) Fail(file, "no '<folder>/data.pkl' entry: not a torch.save checkpoint");
  if (found.size() > 1) {
    Fail(file, "two pickles ('" + found[0] + "/data.pkl', '" + found[1] + "/data.pkl')");
  }
  return found[0];
}

void CheckByteOrder(const ZipArchive& zip, const std::string& prefix,
                    const std::filesystem::path& file) {
  const ZipEntry* e = zip.Find(prefix + "/byteorder");
  if (e == nullptr) return;  // written since PyTorch 2.1; older files are little-endian
  const auto b = zip.Read(*e, /*verify_crc=*/true);
  if (std::string_view(reinterpret_cast<const char*>(b.data()), b.size()) != "little") {
    Fail(file,
         "entry '" + e->name + "' is not \"little\": big-endian checkpoints are not supported");
  }
}

// The state dict flattened to (name, tensor index) pairs, in pickle order.
class Flattener {
 public:
  Flattener(const PickleProgram& program, const std::filesystem::path& file)
      : program_(program), file_(file) {}

  std::vector<std::pair<std::string, uint32_t>> Run() {
    const PickleValue& root = program_.value(program_.root());
    if (root.kind != PickleKind::kDict) {
      Fail(file_, "data.pkl does not hold a dict of tensors (a state dict)");
    }
    Walk(program_.root(), "", 0);
    return std::move(out_);
  }

 private:
  void Walk(uint32_t index, const std::string& name, int depth) {
    // A tree visits each value once; shared tensors (tied weights) add a visit per extra name.
    if (++visits_ > 2 * program_.size() + 16) {
      Fail(file_,
           "data.pkl's containers are cyclic or shared so often that flattening them "
           "would not end");
    }
    const PickleValue& v = program_.value(index);
    if (v.kind == PickleKind::kTensor) {
      out_.emplace_back(name, static_cast<uint32_t>(v.integer));
      return;
    }
    const bool is_dict = v.kind == PickleKind::kDict;
    if (!is_dict && v.kind != PickleKind::kList && v.kind != PickleKind::kTuple) return;
    if (depth >= kMaxNesting) {
      Fail(file_, "containers nested deeper than " + std::to_string(kMaxNesting) +
                      " levels (cyclic?) at '" + name.substr(0, 200) + "'");
    }
    const size_t step = is_dict ? 2 : 1;
    for (size_t i = 0; i < v.items.size(); i += step) {
      std::string key = is_dict ? KeyText(v.items[i]) : std::to_string(i);
      std::string child = name.empty() ? std::move(key) : name + "." + key;
      if (child.size() > kMaxNameBytes) {
        Fail(file_, "a tensor name longer than " + std::to_string(kMaxNameBytes) + " bytes ('" +
                        child.substr(0, 200) + "...')");
      }
      Walk(v.items[i + step - 1], child, depth + 1);
    }
  }

  std::string KeyText(uint32_t index) const {
    const PickleValue& k = program_.value(index);
    return k.kind == PickleKind::kInt ? std::to_string(k.integer) : k.text;
  }

  const PickleProgram& program_;
  const std::filesystem::path& file_;
  std::vector<std::pair<std::string, uint32_t>> out_;
  size_t visits_ = 0;
};

// The bytes of storage `s`, checked against the numel its persistent id declares.
std::span<const std::byte> StorageBytes(const ZipArchive& zip, const std::string& prefix,
                                        const PickleStorage& s, const std::string& tensor,
                                        const std::filesystem::path& file) {
  const std::string entry = prefix + "/data/" + s.key;
  const ZipEntry* e = zip.Find(entry);
  if (e == nullptr) {
    FailTensor(file, tensor, "its storage entry '" + entry + "' is missing from the archive");
  }
  const auto bytes = zip.Read(*e, /*verify_crc=*/false);  // a CRC would read every weight page
  int64_t expected = 0;
  if (__builtin_mul_overflow(s.numel, static_cast<int64_t>(DTypeSize(*s.dtype)), &expected) ||
      static_cast<uint64_t>(expected) != bytes.size()) {
    FailTensor(file, tensor,
               "storage entry '" + entry + "' holds " + std::to_string(bytes.size()) +
                   " bytes but is declared as " + std::to_string(s.numel) + " x " +
                   std::string(DTypeName(*s.dtype)));
  }
  return bytes;
}

// Checks shape, stride and offset against the storage; returns the tensor's bytes.
std::span<const std::byte> TensorBytes(const PickleTensor& t, const PickleStorage& s,
                                       std::span<const std::byte> storage, const std::string& name,
                                       const std::filesystem::path& file) {
  int64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) {
      FailTensor(file, name, "invalid shape " + Shape(t.shape));
    }
  }
  int64_t expected_stride = 1;
  for (size_t i = t.shape.size(); i-- > 0 && numel > 0;) {
    if (t.shape[i] != 1 && t.stride[i] != expected_stride) {
      FailTensor(file, name,
                 "is not contiguous (shape " + Shape(t.shape) + ", stride " + Shape(t.stride) +
                     "); rwkv-embed reads contiguous tensors only: save tensor.contiguous()");
    }
    expected_stride *= t.shape[i];
  }
  if (t.offset < 0 || t.offset > s.numel || numel > s.numel - t.offset) {
    FailTensor(file, name,
               "shape " + Shape(t.shape) + " at storage offset " + std::to_string(t.offset) +
                   " runs past its storage '" + s.key + "' of " + std::to_string(s.numel) +
                   " elements");
  }
  const size_t esize = DTypeSize(*s.dtype);
  return storage.subspan(static_cast<size_t>(t.offset) * esize, static_cast<size_t>(numel) * esize);
}

}  // namespace

bool IsLegacyTorchFormat(std::span<const std::byte> bytes) {
  return bytes.size() >= kLegacyMagic.size() &&
         std::memcmp(bytes.data(), kLegacyMagic.data(), kLegacyMagic.size()) == 0;
}

std::vector<TensorView> ReadPthTensors(std::span<const std::byte> bytes,
                                       const std::filesystem::path& file) {
  if (!HasZipMagic(bytes)) {
    if (IsLegacyTorchFormat(bytes)) {
      Fail(file,
           "legacy torch.save format (PyTorch < 1.6) is not supported; re-save it with a "
           "current PyTorch (zip format) or convert it to safetensors");
    }
    Fail(file, "not a zip archive (torch.save's format starts with \"PK\\x03\\x04\")");
  }
  const ZipArchive zip = ZipArchive::Parse(bytes, file);
  const std::string prefix = FindPrefix(zip, file);
  CheckByteOrder(zip, prefix, file);
  const ZipEntry& pkl_entry = *zip.Find(prefix + "/data.pkl");
  const PickleProgram program = PickleProgram::Run(
      zip.Read(pkl_entry, /*verify_crc=*/true),
      "PyTorch checkpoint '" + file.string() + "' entry '" + pkl_entry.name + "'");

  std::vector<TensorView> out;
  std::set<std::string_view> names;
  for (auto& [name, index] : Flattener(program, file).Run()) {
    const PickleTensor& t = program.tensors()[index];
    const PickleStorage& s = program.storages()[t.storage];
    if (!s.dtype) {
      FailTensor(file, name,
                 "unsupported storage type " + s.type +
                     " (supported: F64/F32/F16/BF16 and integer/bool storages)");
    }
    TensorView v;
    v.bytes = TensorBytes(t, s, StorageBytes(zip, prefix, s, name, file), name, file);
    v.name = std::move(name);
    v.dtype = *s.dtype;
    v.shape = t.shape;
    v.file = &file;
    out.push_back(std::move(v));
  }
  for (const TensorView& v : out) {
    if (!names.insert(v.name).second) Fail(file, "tensor name '" + v.name + "' appears twice");
  }
  return out;
}

PthFile PthFile::Open(const std::filesystem::path& path) {
  PthFile f;
  f.file_ = std::make_unique<MappedFile>(MappedFile::Open(path));
  f.tensors_ = ReadPthTensors(f.file_->bytes(), f.file_->path());
  return f;
}

bool ParsePthForFuzzing(std::span<const uint8_t> data) {
  static const std::filesystem::path kName = "<fuzz input>";
  try {
    const auto tensors = ReadPthTensors(std::as_bytes(data), kName);
    // Reading both ends of every view lets a sanitizer catch a range check that let one escape.
    unsigned sum = 0;
    for (const TensorView& t : tensors) {
      if (!t.bytes.empty())
        sum += static_cast<unsigned>(t.bytes.front()) + static_cast<unsigned>(t.bytes.back());
    }
    volatile unsigned sink = sum;
    (void)sink;
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace rwkv_embed
