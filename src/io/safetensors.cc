#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/utf8.h"

namespace rwkv_embed {

// Tensor bytes are reinterpreted in place; the safetensors format is little-endian.
static_assert(std::endian::native == std::endian::little,
              "rwkv-embed assumes a little-endian host");

namespace {

using Json = nlohmann::json;

// The reference implementation (huggingface/safetensors, MAX_HEADER_SIZE) refuses headers over
// 100 MB; a larger length is corruption, not a real checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A sharded index maps tensor names to file names: ~100 KB for the largest released models.
constexpr uint64_t kMaxIndexBytes = 64ull << 20;

std::string Quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::string ErrnoText() { return std::strerror(errno); }

[[noreturn]] void FailFormat(const std::filesystem::path& file, const std::string& what) {
  throw FormatError("safetensors file " + Quote(file) + ": " + what);
}

[[noreturn]] void FailTensor(const std::filesystem::path& file, const std::string& tensor,
                             const std::string& what) {
  throw FormatError("safetensors file " + Quote(file) + ", tensor '" + EscapeForMessage(tensor) +
                    "': " + what);
}

std::optional<DType> ParseDType(std::string_view s) {
  static constexpr DType kAll[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16,
                                   DType::kI64, DType::kI32, DType::kI16, DType::kI8,
                                   DType::kU8,  DType::kBool};
  for (DType t : kAll) {
    if (DTypeName(t) == s) return t;
  }
  return std::nullopt;
}

// A non-negative JSON integer, or nullopt (floats, negatives, other types).
std::optional<uint64_t> AsUnsigned(const Json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  return std::nullopt;
}

// numel * elem_size without overflow; nullopt when it does not fit in 63 bits.
std::optional<uint64_t> CheckedBytes(std::span<const int64_t> shape, uint64_t elem_size) {
  int64_t total = static_cast<int64_t>(elem_size);
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(total, d, &total)) return std::nullopt;
  }
  return static_cast<uint64_t>(total);
}

TensorView ParseEntry(const std::filesystem::path& file, const std::string& name, const Json& e,
                      std::span<const std::byte> data, uint64_t* begin_out) {
  if (!e.is_object()) FailTensor(file, name, "header entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!e.contains(key)) FailTensor(file, name, std::string("missing field '") + key + "'");
  }
  TensorView t;
  t.name = name;

  const Json& dtype = e["dtype"];
  if (!dtype.is_string()) FailTensor(file, name, "field 'dtype' is not a string");
  const std::string dtype_name = dtype.get<std::string>();
  if (dtype_name.starts_with("F8")) {
    FailTensor(file, name,
               "unsupported dtype '" + EscapeForMessage(dtype_name, 40) +
                   "' (8-bit floats are not supported)");
  }
  const std::optional<DType> parsed = ParseDType(dtype_name);
  if (!parsed) FailTensor(file, name, "unknown dtype '" + EscapeForMessage(dtype_name, 40) + "'");
  t.dtype = *parsed;

  const Json& shape = e["shape"];
  if (!shape.is_array()) FailTensor(file, name, "field 'shape' is not an array");
  for (const Json& d : shape) {
    if (!d.is_number_integer())
      FailTensor(file, name, "shape " + shape.dump() + " holds a non-integer");
    if (d.is_number_unsigned() ? d.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}
                               : d.get<int64_t>() < 0) {
      FailTensor(file, name, "negative or oversized dimension in shape " + shape.dump());
    }
    t.shape.push_back(d.get<int64_t>());
  }

  const Json& offsets = e["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    FailTensor(file, name, "field 'data_offsets' is not an array [begin, end]");
  }
  const std::optional<uint64_t> begin = AsUnsigned(offsets[0]);
  const std::optional<uint64_t> end = AsUnsigned(offsets[1]);
  if (!begin || !end) {
    FailTensor(file, name, "data_offsets " + offsets.dump() + " are not non-negative integers");
  }
  if (*begin > *end) FailTensor(file, name, "data_offsets " + offsets.dump() + " have begin > end");
  if (*end > data.size()) {
    FailTensor(file, name,
               "data_offsets " + offsets.dump() + " out of range (data region holds " +
                   std::to_string(data.size()) + " bytes)");
  }
  const std::optional<uint64_t> expected = CheckedBytes(t.shape, DTypeSize(t.dtype));
  if (!expected || *expected != *end - *begin) {
    FailTensor(
        file, name,
        "shape/byte-size mismatch: " + t.ShapeString() + " x " + dtype_name + " needs " +
            (expected ? std::to_string(*expected) : std::string("an overflowing number of")) +
            " bytes but data_offsets " + offsets.dump() + " span " + std::to_string(*end - *begin));
  }
  t.bytes = data.subspan(*begin, *end - *begin);
  *begin_out = *begin;
  return t;
}

// The safetensors rule (huggingface/safetensors, Metadata::validate): sorted by offsets, the
// tensors cover the data region exactly, with no bytes before, between or after them and no
// overlaps. A header length one byte short still parses (the JSON ends in padding) but moves the
// data region by a byte; only this check catches it.
void CheckCoverage(const std::filesystem::path& file, const std::vector<TensorView>& tensors,
                   std::vector<std::pair<uint64_t, size_t>> by_offset, uint64_t data_size) {
  // (begin, end) order; an empty tensor sorts before a non-empty one at the same offset.
  std::sort(by_offset.begin(), by_offset.end(), [&](const auto& a, const auto& b) {
    const uint64_t a_end = a.first + tensors[a.second].bytes.size();
    const uint64_t b_end = b.first + tensors[b.second].bytes.size();
    return a.first != b.first ? a.first < b.first : a_end < b_end;
  });
  const TensorView* prev = nullptr;  // the tensor that ends at `covered`
  uint64_t covered = 0;
  for (const auto& [begin, index] : by_offset) {
    const TensorView& t = tensors[index];
    if (begin < covered) {
      FailTensor(file, t.name,
                 "data_offsets overlap tensor '" + prev->name + "' (starts at " +
                     std::to_string(begin) + ", before its end " + std::to_string(covered) + ")");
    }
    if (begin > covered) {
      FailTensor(file, t.name,
                 "bytes [" + std::to_string(covered) + ", " + std::to_string(begin) +
                     ") of the data region before it are not covered by any tensor" +
                     (prev ? " (gap after tensor '" + prev->name + "')"
                           : std::string(" (gap at the start)")) +
                     "; safetensors tensors must cover the data region exactly");
    }
    if (!t.bytes.empty()) prev = &t;
    covered = begin + t.bytes.size();
  }
  if (covered != data_size) {
    FailFormat(file, std::to_string(data_size - covered) +
                         " byte(s) at the end of the data region (" + std::to_string(covered) +
                         ".." + std::to_string(data_size) + ") are not covered by any tensor" +
                         (prev ? " (after the last tensor '" + prev->name + "')" : std::string()) +
                         "; the header length is wrong or the file has trailing bytes");
  }
}

Json ReadJsonFile(const std::filesystem::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw IoError("cannot open " + std::string(what) + " " + Quote(path) + ": " + ErrnoText());
  // The whole file is read into memory: bound it first (a sharded index is a few hundred KB).
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec)
    throw IoError("cannot read " + std::string(what) + " " + Quote(path) + ": " + ec.message());
  if (size > kMaxIndexBytes) {
    throw FormatError(std::string(what) + " " + Quote(path) + " is " + std::to_string(size) +
                      " bytes, more than the " + std::to_string(kMaxIndexBytes) +
                      " an index can need");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("cannot read " + std::string(what) + " " + Quote(path));
  try {
    return Json::parse(ss.str());
  } catch (const Json::exception& ex) {
    throw FormatError(std::string(what) + " " + Quote(path) +
                      " is not valid JSON: " + EscapeForMessage(ex.what()));
  }
}

// The file a weight_map entry names, which must stay inside the index's folder: the index is
// downloaded content, and an entry such as "../../etc/passwd" or "/dev/zero" must not make the
// loader open, map and report on files elsewhere. Relative names without ".." only, and no
// symlink may lead out of the folder, except into the Hugging Face hub cache's own blobs/ (a
// snapshot folder models--org--name/snapshots/REV/ links every file to ../../blobs/HASH).
std::filesystem::path ShardPath(const std::filesystem::path& index, const std::string& tensor,
                                const std::string& shard) {
  const auto fail = [&](const std::string& why) {
    throw FormatError("index " + Quote(index) + ": weight_map entry for tensor '" + tensor +
                      "' names shard '" + shard + "', " + why);
  };
  const std::filesystem::path name(shard);
  if (shard.empty()) fail("an empty file name");
  if (shard.find('\0') != std::string::npos) fail("a file name with a NUL byte");
  if (name.has_root_path()) {
    fail("an absolute path; shard paths must be relative to the index's folder");
  }
  for (const auto& part : name) {
    if (part == "..") fail("a path with '..'; shards must stay inside the model folder");
  }
  const std::filesystem::path folder = index.parent_path().empty() ? "." : index.parent_path();
  std::filesystem::path path = folder / name;
  std::error_code ec;
  const std::filesystem::path real_folder = std::filesystem::weakly_canonical(folder, ec);
  if (ec) throw IoError("cannot resolve folder " + Quote(folder) + ": " + ec.message());
  // weakly_canonical: a shard that does not exist stays as named; opening it reports that.
  const std::filesystem::path real = std::filesystem::weakly_canonical(path, ec);
  if (ec) throw IoError("cannot resolve shard " + Quote(path) + ": " + ec.message());
  const auto inside = [&real](const std::filesystem::path& root) {
    const std::filesystem::path rel = real.lexically_relative(root);
    return !rel.empty() && *rel.begin() != "..";
  };
  const bool hub_snapshot = real_folder.parent_path().filename() == "snapshots";
  if (!inside(real_folder) &&
      !(hub_snapshot && inside(real_folder.parent_path().parent_path() / "blobs"))) {
    fail("which resolves (through a symbolic link) to " + Quote(real) +
         ", outside the model folder " + Quote(real_folder));
  }
  return path;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// MappedFile

MappedFile MappedFile::Open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open " + Quote(path) + ": " + ErrnoText());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string err = ErrnoText();
    ::close(fd);
    throw IoError("cannot stat " + Quote(path) + ": " + err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError("cannot map " + Quote(path) + ": not a regular file");
  }
  MappedFile f;
  f.path_ = path;
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ > 0) {  // mmap of length 0 is EINVAL; an empty file is an empty span.
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string err = ErrnoText();
      ::close(fd);
      throw IoError("cannot mmap " + Quote(path) + ": " + err);
    }
    f.data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);  // the mapping keeps its own reference to the file
  return f;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---------------------------------------------------------------------------------------------
// TensorView

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile SafetensorsFile::Open(const std::filesystem::path& path) {
  SafetensorsFile st;
  st.file_ = std::make_unique<MappedFile>(MappedFile::Open(path));
  const std::filesystem::path& file = st.file_->path();
  const std::span<const std::byte> all = st.file_->bytes();

  if (all.size() < 8) {
    FailFormat(file, "file is " + std::to_string(all.size()) +
                         " bytes, shorter than the 8-byte header length");
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, all.data(), 8);  // little-endian u64
  if (header_len > kMaxHeaderBytes || header_len > all.size() - 8) {
    FailFormat(file, "header length " + std::to_string(header_len) + " is beyond the file size (" +
                         std::to_string(all.size()) + " bytes) or absurd");
  }
  const auto* header_chars = reinterpret_cast<const char*>(all.data() + 8);
  const std::span<const std::byte> data = all.subspan(8 + header_len);

  // nlohmann::json keeps the last of duplicated keys silently; a duplicated tensor name would
  // hide a tensor, so spot top-level duplicates while parsing.
  std::set<std::string> seen;
  std::string duplicate;
  const auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(header_chars, header_chars + header_len, callback);
  } catch (const Json::exception& ex) {
    FailFormat(file, "header is not valid JSON: " + EscapeForMessage(ex.what()));
  }
  if (!header.is_object()) FailFormat(file, "header is not a JSON object");
  if (!duplicate.empty()) FailTensor(file, duplicate, "appears twice in the header");

  std::vector<std::pair<uint64_t, size_t>> by_offset;  // (begin, index into tensors_)
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) FailFormat(file, "__metadata__ is not a JSON object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          FailFormat(file, "__metadata__ value '" + EscapeForMessage(key) + "' is not a string");
        st.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    uint64_t begin = 0;
    st.tensors_.push_back(ParseEntry(file, name, entry, data, &begin));
    st.tensors_.back().file = &file;
    by_offset.emplace_back(begin, st.tensors_.size() - 1);
  }
  CheckCoverage(file, st.tensors_, std::move(by_offset), data.size());
  // nlohmann's object is a std::map, so tensors_ is already sorted by name; Find relies on it.
  return st;
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  const auto it = std::lower_bound(
      tensors_.begin(), tensors_.end(), name,
      [](const TensorView& t, std::string_view n) { return std::string_view(t.name) < n; });
  return (it != tensors_.end() && it->name == name) ? &*it : nullptr;
}

// ---------------------------------------------------------------------------------------------
// TensorStore

TensorStore TensorStore::Open(const std::filesystem::path& path) {
  std::filesystem::path target = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    const auto single = path / "model.safetensors";
    const auto index = path / "model.safetensors.index.json";
    // Same preference as transformers: the single file first, then the sharded index.
    const bool has_single = std::filesystem::exists(single, ec);
    const bool has_index = std::filesystem::exists(index, ec);
    if (has_single && has_index) {
      // Which one is current cannot be told (e.g. a sharded model written over a single-file
      // one): loading either could silently use stale weights.
      throw FormatError("model folder " + Quote(path) + " holds both " + Quote(single) + " and " +
                        Quote(index) + ": ambiguous which weights to load; remove the stale one");
    }
    if (has_single) {
      target = single;
    } else if (has_index) {
      target = index;
    } else {
      throw IoError("directory " + Quote(path) + " holds neither model.safetensors nor " +
                    "model.safetensors.index.json");
    }
  }

  TensorStore store;
  const bool is_index = target.extension() == ".json";
  if (!is_index) {
    store.files_.push_back(SafetensorsFile::Open(target));
  } else {
    const Json index = ReadJsonFile(target, "index");
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw FormatError("index " + Quote(target) + " has no \"weight_map\" object");
    }
    const Json& weight_map = index["weight_map"];
    if (weight_map.empty()) throw FormatError("index " + Quote(target) + " lists no tensors");
    // shard file name -> (its path, files_ index)
    std::map<std::string, std::pair<std::filesystem::path, size_t>> shard_index;
    for (const auto& [tensor, shard] : weight_map.items()) {
      if (!shard.is_string()) {
        throw FormatError("index " + Quote(target) + ": weight_map entry for tensor '" + tensor +
                          "' is not a file name string");
      }
      const std::string name = shard.get<std::string>();
      if (!shard_index.contains(name)) {
        shard_index.emplace(name, std::make_pair(ShardPath(target, tensor, name), 0));
      }
    }
    for (auto& [shard, entry] : shard_index) {  // every listed shard opened once, in name order
      entry.second = store.files_.size();
      store.files_.push_back(SafetensorsFile::Open(entry.first));
    }
    for (const auto& [tensor, shard] : weight_map.items()) {
      const SafetensorsFile& f = store.files_[shard_index.at(shard.get<std::string>()).second];
      if (f.Find(tensor) == nullptr) {
        throw FormatError("index " + Quote(target) + " maps tensor '" + EscapeForMessage(tensor) +
                          "' to shard " + Quote(f.path()) + ", which does not hold it");
      }
    }
  }
  // Every tensor of every shard is reachable (transformers loads whole shards too), but a name
  // in two shards is ambiguous.
  for (const SafetensorsFile& f : store.files_) {
    for (const TensorView& t : f.tensors()) {
      const auto [it, inserted] = store.by_name_.emplace(t.name, &t);
      if (!inserted) {
        throw FormatError("tensor '" + t.name + "' is present in two shards: " +
                          Quote(*it->second->file) + " and " + Quote(f.path()));
      }
    }
  }
  return store;
}

TensorStore TensorStore::FromViews(std::vector<TensorView> tensors,
                                   std::vector<std::shared_ptr<const void>> owners,
                                   std::string description) {
  TensorStore store;
  store.views_ = std::move(tensors);
  store.owners_ = std::move(owners);
  store.description_ = std::move(description);
  for (const TensorView& t : store.views_) {
    if (!store.by_name_.emplace(t.name, &t).second) {
      throw FormatError("tensor '" + t.name + "' appears twice in " + store.description_);
    }
  }
  return store;
}

const TensorView* TensorStore::Find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& TensorStore::Get(std::string_view name) const {
  const TensorView* t = Find(name);
  if (t == nullptr) {
    throw ShapeError("tensor '" + std::string(name) + "' not found in " + Describe());
  }
  return *t;
}

std::vector<std::string> TensorStore::Names() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) names.push_back(name);
  return names;
}

std::string TensorStore::Describe() const {
  if (!description_.empty()) return description_;
  std::string s;
  for (size_t i = 0; i < files_.size(); ++i) {
    if (i > 0) s += ", ";
    s += files_[i].path().string();
  }
  return s;
}

size_t TensorStore::TotalBytes() const {
  size_t total = 0;
  for (const auto& [name, t] : by_name_) total += t->bytes.size();
  return total;
}

// ---------------------------------------------------------------------------------------------
// Conversions

namespace {

template <typename T>
T LoadAt(const std::byte* p, size_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));  // tensor data need not be aligned
  return v;
}

template <typename T>
void ConvertAll(const TensorView& t, std::vector<float>& out) {
  const std::byte* p = t.bytes.data();
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(LoadAt<T>(p, i));
}

}  // namespace

std::vector<float> ToFloat32(const TensorView& t) {
  std::vector<float> out(t.bytes.size() / DTypeSize(t.dtype));
  const std::byte* p = t.bytes.data();
  switch (t.dtype) {
    case DType::kF64:
      ConvertAll<double>(t, out);
      break;
    case DType::kF32:
      ConvertAll<float>(t, out);
      break;
    case DType::kF16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = F16ToF32(LoadAt<uint16_t>(p, i));
      break;
    case DType::kBF16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = Bf16ToF32(LoadAt<uint16_t>(p, i));
      break;
    case DType::kI64:
      ConvertAll<int64_t>(t, out);
      break;
    case DType::kI32:
      ConvertAll<int32_t>(t, out);
      break;
    case DType::kI16:
      ConvertAll<int16_t>(t, out);
      break;
    case DType::kI8:
      ConvertAll<int8_t>(t, out);
      break;
    case DType::kU8:
      ConvertAll<uint8_t>(t, out);
      break;
    case DType::kBool:
      for (size_t i = 0; i < out.size(); ++i) out[i] = LoadAt<uint8_t>(p, i) != 0 ? 1.0f : 0.0f;
      break;
  }
  return out;
}

std::optional<int64_t> FindNonFinite(const TensorView& t) {
  const std::byte* p = t.bytes.data();
  const size_t n = t.bytes.size() / DTypeSize(t.dtype);
  // Bit tests: NaN/Inf are exactly the all-ones exponent, for every IEEE-style format.
  switch (t.dtype) {
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) {
        if ((LoadAt<uint64_t>(p, i) & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) return i;
      }
      break;
    case DType::kF32:
      for (size_t i = 0; i < n; ++i) {
        if ((LoadAt<uint32_t>(p, i) & 0x7f800000u) == 0x7f800000u) return i;
      }
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        if ((LoadAt<uint16_t>(p, i) & 0x7c00u) == 0x7c00u) return i;
      }
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        if ((LoadAt<uint16_t>(p, i) & 0x7f80u) == 0x7f80u) return i;
      }
      break;
    default:
      break;  // integers are always finite
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Writing

void WriteSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorView> views;
  views.reserve(tensors.size());
  for (const TensorToWrite& t : tensors) views.push_back({t.name, t.dtype, t.shape, t.bytes});
  WriteSafetensorsFromViews(path, views, metadata);
}

void WriteSafetensorsFromViews(const std::filesystem::path& path,
                               std::span<const TensorView> tensors,
                               const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorView*> sorted;
  for (const TensorView& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorView* a, const TensorView* b) { return a->name < b->name; });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const TensorView& t = *sorted[i];
    if (t.name == "__metadata__") throw UsageError("cannot write a tensor named '__metadata__'");
    if (i > 0 && sorted[i - 1]->name == t.name) {
      throw UsageError("cannot write " + Quote(path) + ": tensor '" + t.name + "' given twice");
    }
    if (std::any_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d < 0; })) {
      throw ShapeError("cannot write tensor '" + t.name + "': negative dimension");
    }
    const std::optional<uint64_t> expected = CheckedBytes(t.shape, DTypeSize(t.dtype));
    if (!expected || *expected != t.bytes.size()) {
      throw ShapeError("cannot write tensor '" + t.name + "' to " + Quote(path) + ": " +
                       std::to_string(t.bytes.size()) + " bytes do not match its shape and dtype " +
                       std::string(DTypeName(t.dtype)));
    }
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string json = header.dump();
  // Pad with spaces so the data region starts 8-byte aligned, as the reference writer does.
  json.append((8 - json.size() % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError("cannot create " + Quote(path) + ": " + ErrnoText());
  const uint64_t header_len = json.size();
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out.write(json.data(), static_cast<std::streamsize>(json.size()));
  for (const TensorView* t : sorted) {
    out.write(reinterpret_cast<const char*>(t->bytes.data()),
              static_cast<std::streamsize>(t->bytes.size()));
  }
  out.close();
  if (!out) throw IoError("cannot write " + Quote(path) + ": " + ErrnoText());
}

}  // namespace rwkv_embed
