#include "io/npy.h"

#include <bit>
#include <cctype>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/safetensors.h"

namespace rwkv_embed {

static_assert(std::endian::native == std::endian::little,
              "rwkv-embed assumes a little-endian host");

namespace {

// Format reference: numpy/lib/format.py (NEP 1). Preamble = magic "\x93NUMPY", major, minor,
// header length (LE uint16 in v1.0, uint32 in v2.0/3.0), then an ASCII Python dict literal padded
// with spaces and ended by '\n' so that the data starts on a 64-byte boundary (ARRAY_ALIGN).
constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;

std::string Quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

[[noreturn]] void Fail(const std::filesystem::path& path, const std::string& what) {
  throw FormatError(".npy file " + Quote(path) + ": " + what);
}

// A tiny parser for the header dict numpy writes: string keys, values that are strings,
// True/False, or tuples of non-negative integers. Anything else is rejected.
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::filesystem::path& path) : s_(s), path_(path) {}

  struct Value {
    enum class Kind { kString, kBool, kTuple } kind = Kind::kString;
    std::string str;
    bool boolean = false;
    std::vector<int64_t> tuple;
  };

  // Calls on_item(key, value) for every entry.
  template <typename F>
  void Parse(F&& on_item) {
    Expect('{');
    while (true) {
      SkipSpace();
      if (Peek() == '}') break;
      const std::string key = ParseString();
      Expect(':');
      on_item(key, ParseValue());
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() != '}') Fail(path_, "header dict: expected ',' or '}' at offset " + Pos());
    }
    ++pos_;
    SkipSpace();
    if (pos_ != s_.size()) Fail(path_, "header dict: trailing characters at offset " + Pos());
  }

 private:
  std::string Pos() const { return std::to_string(pos_); }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void Expect(char c) {
    SkipSpace();
    if (Peek() != c)
      Fail(path_, std::string("header dict: expected '") + c + "' at offset " + Pos());
    ++pos_;
  }
  std::string ParseString() {
    SkipSpace();
    const char q = Peek();
    if (q != '\'' && q != '"')
      Fail(path_, "header dict: expected a quoted string at offset " + Pos());
    const size_t close = s_.find(q, pos_ + 1);
    if (close == std::string_view::npos) Fail(path_, "header dict: unterminated string");
    std::string out(s_.substr(pos_ + 1, close - pos_ - 1));
    pos_ = close + 1;
    return out;
  }
  int64_t ParseInt() {
    SkipSpace();
    if (!std::isdigit(static_cast<unsigned char>(Peek()))) {
      Fail(path_, "header dict: expected a non-negative integer at offset " + Pos());
    }
    int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(Peek()))) {
      const int digit = s_[pos_++] - '0';
      if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) {
        Fail(path_, "header dict: dimension too large");
      }
      v = v * 10 + digit;
    }
    if (Peek() == 'L') ++pos_;  // Python 2 longs, still written by old numpy
    return v;
  }
  Value ParseValue() {
    SkipSpace();
    Value v;
    const char c = Peek();
    if (c == '\'' || c == '"') {
      v.kind = Value::Kind::kString;
      v.str = ParseString();
    } else if (s_.substr(pos_).starts_with("True")) {
      v.kind = Value::Kind::kBool;
      v.boolean = true;
      pos_ += 4;
    } else if (s_.substr(pos_).starts_with("False")) {
      v.kind = Value::Kind::kBool;
      pos_ += 5;
    } else if (c == '(') {
      v.kind = Value::Kind::kTuple;
      ++pos_;
      while (true) {
        SkipSpace();
        if (Peek() == ')') break;
        v.tuple.push_back(ParseInt());
        SkipSpace();
        if (Peek() == ',') {
          ++pos_;
        } else if (Peek() != ')') {
          Fail(path_, "header dict: expected ',' or ')' in shape at offset " + Pos());
        }
      }
      ++pos_;
    } else {
      Fail(path_, "header dict: unsupported value at offset " + Pos());
    }
    return v;
  }

  std::string_view s_;
  const std::filesystem::path& path_;
  size_t pos_ = 0;
};

std::string ShapeTuple(std::span<const int64_t> shape) {
  // Python's repr of a tuple: "()", "(5,)", "(2, 3)".
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

}  // namespace

std::string NpyF32Preamble(std::span<const int64_t> shape) {
  // Same dict text and padding rule as numpy's _wrap_header (keys sorted, trailing ", ").
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + ShapeTuple(shape) + ", }";
  const size_t unpadded = kMagicLen + 2 + 2 + header.size() + 1;  // +1 for '\n'
  header.append(kAlign - unpadded % kAlign, ' ');
  header += '\n';
  if (header.size() > std::numeric_limits<uint16_t>::max()) {
    throw ShapeError("too many dimensions for a v1.0 .npy header");
  }
  const auto header_len = static_cast<uint16_t>(header.size());
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  out.append(reinterpret_cast<const char*>(&header_len), 2);
  return out + header;
}

NpyF32Writer::NpyF32Writer(const std::filesystem::path& path, std::span<const int64_t> shape)
    : path_(path) {
  numel_ = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("cannot write " + Quote(path) + ": negative dimension");
    if (__builtin_mul_overflow(numel_, d, &numel_)) {
      throw ShapeError("cannot write " + Quote(path) + ": shape too large");
    }
  }
  std::string preamble;
  try {
    preamble = NpyF32Preamble(shape);
  } catch (const ShapeError& e) {
    throw ShapeError("cannot write " + Quote(path) + ": " + e.what());
  }
  out_.open(path, std::ios::binary | std::ios::trunc);
  if (!out_) throw IoError("cannot create " + Quote(path) + ": " + std::strerror(errno));
  out_.write(preamble.data(), static_cast<std::streamsize>(preamble.size()));
  data_start_ = static_cast<int64_t>(preamble.size());
  if (!out_) throw IoError("cannot write " + Quote(path) + ": " + std::strerror(errno));
}

void NpyF32Writer::Write(int64_t element_offset, std::span<const float> values) {
  if (element_offset < 0 || element_offset + static_cast<int64_t>(values.size()) > numel_) {
    throw ShapeError("cannot write " + Quote(path_) + ": elements [" +
                     std::to_string(element_offset) + ", " +
                     std::to_string(element_offset + values.size()) + ") outside the array of " +
                     std::to_string(numel_));
  }
  written_ += static_cast<int64_t>(values.size());
  out_.seekp(data_start_ + element_offset * 4);
  out_.write(reinterpret_cast<const char*>(values.data()),
             static_cast<std::streamsize>(values.size_bytes()));
  if (!out_) throw IoError("cannot write " + Quote(path_) + ": " + std::strerror(errno));
}

void NpyF32Writer::Close() {
  if (written_ != numel_) {
    throw ShapeError("cannot finish " + Quote(path_) + ": " + std::to_string(written_) + " of " +
                     std::to_string(numel_) + " elements written");
  }
  out_.close();
  if (!out_) throw IoError("cannot write " + Quote(path_) + ": " + std::strerror(errno));
}

void WriteNpyF32(const std::filesystem::path& path, std::span<const int64_t> shape,
                 std::span<const float> data) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) numel = -1;
  }
  if (numel >= 0 && static_cast<uint64_t>(numel) != data.size()) {
    throw ShapeError("cannot write " + Quote(path) + ": shape " + ShapeTuple(shape) + " holds " +
                     std::to_string(numel) + " elements but " + std::to_string(data.size()) +
                     " were given");
  }
  NpyF32Writer writer(path, shape);
  writer.Write(0, data);
  writer.Close();
}

NpyArray ReadNpyF32(const std::filesystem::path& path) {
  const MappedFile file = MappedFile::Open(path);
  const std::span<const std::byte> all = file.bytes();
  const auto* chars = reinterpret_cast<const char*>(all.data());
  if (all.size() < kMagicLen + 2 || std::memcmp(chars, kMagic, kMagicLen) != 0) {
    Fail(path, "missing the \\x93NUMPY magic");
  }
  const auto major = static_cast<uint8_t>(chars[6]);
  size_t len_bytes = 0;
  if (major == 1) {
    len_bytes = 2;
  } else if (major == 2 || major == 3) {
    len_bytes = 4;
  } else {
    Fail(path, "unsupported format version " + std::to_string(major));
  }
  if (all.size() < kMagicLen + 2 + len_bytes) Fail(path, "truncated preamble");
  uint32_t header_len = 0;
  std::memcpy(&header_len, chars + kMagicLen + 2, len_bytes);  // LE uint16 or uint32
  const size_t data_start = kMagicLen + 2 + len_bytes + header_len;
  if (data_start > all.size()) {
    Fail(path, "header length " + std::to_string(header_len) + " runs past the end of the file");
  }
  const std::string_view header(chars + kMagicLen + 2 + len_bytes, header_len);

  NpyArray array;
  bool have_descr = false, have_order = false, have_shape = false;
  HeaderParser(header, path).Parse([&](const std::string& key, const HeaderParser::Value& v) {
    using Kind = HeaderParser::Value::Kind;
    if (key == "descr") {
      // '<f4' is little-endian float32; numpy writes '<f4' on little-endian hosts.
      if (v.kind != Kind::kString || v.str != "<f4") {
        Fail(path, "dtype descr '" + v.str + "' is not '<f4' (little-endian float32)");
      }
      have_descr = true;
    } else if (key == "fortran_order") {
      if (v.kind != Kind::kBool) Fail(path, "fortran_order is not True/False");
      if (v.boolean) Fail(path, "fortran_order True is not supported (C order only)");
      have_order = true;
    } else if (key == "shape") {
      if (v.kind != Kind::kTuple) Fail(path, "shape is not a tuple");
      array.shape = v.tuple;
      have_shape = true;
    } else {
      Fail(path, "unexpected header key '" + key + "'");
    }
  });
  if (!have_descr || !have_order || !have_shape) {
    Fail(path, "header lacks one of 'descr', 'fortran_order', 'shape'");
  }

  // numel * 4 without overflow (GCC/Clang builtin; dimensions are non-negative by parsing).
  int64_t bytes = sizeof(float);
  for (int64_t d : array.shape) {
    if (__builtin_mul_overflow(bytes, d, &bytes)) Fail(path, "shape too large");
  }
  const size_t available = all.size() - data_start;
  if (static_cast<uint64_t>(bytes) != available) {
    Fail(path, "shape " + ShapeTuple(array.shape) + " needs " + std::to_string(bytes) +
                   " data bytes but the file holds " + std::to_string(available));
  }
  array.data.resize(available / sizeof(float));
  if (available > 0) std::memcpy(array.data.data(), all.data() + data_start, available);
  return array;
}

}  // namespace rwkv_embed
