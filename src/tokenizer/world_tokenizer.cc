#include "tokenizer/world_tokenizer.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "core/utf8.h"

namespace rwkv_embed {
namespace {

// Ids index dense tables (id -> bytes), so a corrupt id like 4000000000 must not size them.
// 2^24 is far above any RWKV vocabulary (65536).
constexpr int64_t kMaxId = (int64_t{1} << 24) - 1;

// ---------------------------------------------------------------------------------------------
// Python literal parsing. The vocabulary's literals are written by Python's repr(), but we accept
// every escape a Python 3 str/bytes literal may contain (Python reference manual, "String and
// Bytes literals"), and reject what Python would reject or what cannot be UTF-8 encoded.

// Appends the UTF-8 encoding of code point `cp` (already checked to be a scalar value).
void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the Python literal `lit` (the whole of it: prefix, quotes, body) to bytes: a str
// literal gives the UTF-8 encoding of its characters, a bytes literal its bytes. Returns an
// error description, empty on success.
std::string ParsePythonLiteral(std::string_view lit, std::string& out) {
  out.clear();
  size_t i = 0;
  bool is_bytes = false;
  if (i < lit.size() && lit[i] == 'b') {
    is_bytes = true;
    ++i;
  }
  if (i >= lit.size() || (lit[i] != '\'' && lit[i] != '"')) {
    return "expected a Python str or bytes literal ('...', \"...\", b'...' or b\"...\"), got `" +
           std::string(lit) + "`";
  }
  const char quote = lit[i++];
  while (true) {
    if (i >= lit.size()) return "unterminated literal (no closing " + std::string(1, quote) + ")";
    const char c = lit[i];
    if (c == quote) {
      if (i + 1 != lit.size()) {
        return "unexpected text after the closing quote: `" + std::string(lit.substr(i + 1)) + "`";
      }
      return {};
    }
    if (c != '\\') {
      if (is_bytes && static_cast<unsigned char>(c) >= 0x80) {
        return "non-ASCII character in a bytes literal at column " + std::to_string(i + 1);
      }
      out += c;  // str: the line is valid UTF-8, so its bytes are the character's encoding
      ++i;
      continue;
    }
    // An escape sequence.
    if (i + 1 >= lit.size()) return "unterminated literal (ends in a backslash)";
    const char e = lit[i + 1];
    const size_t escape_start = i;
    i += 2;
    auto bad = [&](const std::string& why) {
      return "bad escape `" + std::string(lit.substr(escape_start, i - escape_start)) + "`: " + why;
    };
    switch (e) {
      case '\\':
        out += '\\';
        continue;
      case '\'':
        out += '\'';
        continue;
      case '"':
        out += '"';
        continue;
      case 'a':
        out += '\a';
        continue;
      case 'b':
        out += '\b';
        continue;
      case 'f':
        out += '\f';
        continue;
      case 'n':
        out += '\n';
        continue;
      case 'r':
        out += '\r';
        continue;
      case 't':
        out += '\t';
        continue;
      case 'v':
        out += '\v';
        continue;
      default:
        break;
    }
    uint32_t value = 0;
    if (e >= '0' && e <= '7') {  // \N, \NN, \NNN octal
      value = static_cast<uint32_t>(e - '0');
      for (int k = 0; k < 2 && i < lit.size() && lit[i] >= '0' && lit[i] <= '7'; ++k, ++i) {
        value = value * 8 + static_cast<uint32_t>(lit[i] - '0');
      }
      if (is_bytes && value > 0xFF) return bad("octal value above 0o377 in a bytes literal");
    } else if (e == 'x' || (!is_bytes && (e == 'u' || e == 'U'))) {
      const size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
      for (size_t k = 0; k < digits; ++k, ++i) {
        const int h = i < lit.size() ? HexValue(lit[i]) : -1;
        if (h < 0) return bad("expected " + std::to_string(digits) + " hex digits");
        value = value * 16 + static_cast<uint32_t>(h);
      }
    } else {
      // Python keeps unknown escapes such as \q verbatim (with a warning); a vocabulary written by
      // repr() never has them, so one means the file is corrupt. \N{name} is not supported.
      return bad(is_bytes && (e == 'u' || e == 'U' || e == 'N') ? "not an escape in a bytes literal"
                                                                : "unknown or unsupported escape");
    }
    if (is_bytes) {
      out += static_cast<char>(value);
    } else {
      if (value > 0x10FFFF) return bad("code point above U+10FFFF");
      if (value >= 0xD800 && value <= 0xDFFF) {
        return bad("surrogate code point, which has no UTF-8 encoding");
      }
      AppendUtf8(value, out);
    }
  }
}

// Parses a whole, non-empty string of ASCII digits (no sign, no spaces) into [0, max].
bool ParseDecimal(std::string_view s, int64_t max, int64_t& value) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  return ec == std::errc() && end == s.data() + s.size() && value <= max;
}

// ---------------------------------------------------------------------------------------------
// Hashing of token bytes for the length-bucketed lookup.

inline uint64_t Load64(const unsigned char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// The k < 8 bytes at p, little-endian, zero-padded, where [begin, p + k) is readable. Loads the
// 8 bytes that end at p + k and shifts instead of copying k bytes into a zeroed word: the byte-wise
// copy followed by a 64-bit load defeats store-to-load forwarding and stalled the encoder
// (measured: ~45% of its cycles on that load).
inline uint64_t LoadPartial(const unsigned char* p, size_t k, const unsigned char* begin) {
  if (k == 0) return 0;
  if (p + k - begin >= 8) return Load64(p + k - 8) >> (8 * (8 - k));
  uint64_t w = 0;
  for (size_t j = 0; j < k; ++j) w |= uint64_t{p[j]} << (8 * j);
  return w;
}

// The first min(n, 8) bytes at p, little-endian, zero-padded; [begin, p + n) is readable.
inline uint64_t LoadHead(const unsigned char* p, size_t n, const unsigned char* begin) {
  return n >= 8 ? Load64(p) : LoadPartial(p, n, begin);
}

// Keeps the first `length` bytes of a little-endian head word (length < 8).
inline uint64_t MaskHead(uint64_t head, uint32_t length) {
  return length >= 8 ? head : head & ((uint64_t{1} << (8 * length)) - 1);
}

// A 64-bit finalizer (the mixing step of MurmurHash3's fmix64 with one multiply).
inline uint64_t Mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

// Hash of the token s[0, length), whose first 8 bytes (masked) are `head`.
inline uint64_t HashToken(const unsigned char* s, uint32_t length, uint64_t head) {
  uint64_t h = Mix(head ^ (uint64_t{length} * 0x9E3779B97F4A7C15ull));
  uint32_t off = 8;
  for (; off + 8 <= length; off += 8) h = Mix(h ^ Load64(s + off));
  // The tail: length > 8 here, so the 8 bytes ending at s + length are all in the token.
  if (off < length) h = Mix(h ^ (Load64(s + length - 8) >> (8 * (8 - (length - off)))));
  return h;
}

}  // namespace

WorldTokenizer WorldTokenizer::FromVocabFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open vocabulary file " + path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw IoError("cannot read vocabulary file " + path.string());
  return FromVocabText(buffer.str(), path.string());
}

WorldTokenizer WorldTokenizer::FromModelDir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw IoError("model folder " + dir.string() + " does not exist or is not a folder");
  }
  const auto path = dir / kVocabFileName;
  if (!std::filesystem::exists(path, ec)) {
    throw IoError("model folder " + dir.string() + " has no " + std::string(kVocabFileName) +
                  " (pass the vocabulary file explicitly)");
  }
  return FromVocabFile(path);
}

WorldTokenizer WorldTokenizer::FromVocabText(std::string_view text, std::string_view source) {
  struct Entry {
    int32_t id;
    size_t line;
    std::string bytes;
  };
  std::vector<Entry> entries;
  std::unordered_map<int32_t, size_t> line_of_id;
  std::unordered_map<std::string, size_t> line_of_bytes;
  int32_t max_id = 0;

  size_t line_no = 0;
  size_t pos = 0;
  std::string bytes;
  while (pos < text.size()) {
    ++line_no;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // Python's universal newlines

    const std::string where = std::string(source) + ", line " + std::to_string(line_no);
    auto fail = [&](const std::string& why) { throw FormatError(where + ": " + why); };
    if (line.empty()) fail("empty line (expected `ID <python literal> BYTE_LENGTH`)");
    ValidateUtf8(line, where);

    // As rwkv_tokenizer.py: the id is before the first space, the length after the last one.
    const size_t first_space = line.find(' ');
    const size_t last_space = line.rfind(' ');
    if (first_space == std::string_view::npos || first_space == last_space) {
      fail("expected `ID <python literal> BYTE_LENGTH`, got `" + EscapeForMessage(line) + "`");
    }
    int64_t id = 0;
    const std::string_view id_field = line.substr(0, first_space);
    if (!ParseDecimal(id_field, kMaxId, id)) {
      fail("id `" + EscapeForMessage(id_field, 40) + "` is not an integer in [1, " +
           std::to_string(kMaxId) + "]");
    }
    if (id == 0) fail("id 0 is reserved for end-of-text and must not be in the vocabulary");
    int64_t length = 0;
    const std::string_view length_field = line.substr(last_space + 1);
    if (!ParseDecimal(length_field, int64_t{1} << 20, length)) {
      fail("byte length `" + EscapeForMessage(length_field, 40) +
           "` is not a non-negative integer");
    }
    const std::string_view literal = line.substr(first_space + 1, last_space - first_space - 1);
    if (std::string why = ParsePythonLiteral(literal, bytes); !why.empty()) fail(why);
    if (static_cast<int64_t>(bytes.size()) != length) {
      fail("literal " + EscapeForMessage(literal) + " has " + std::to_string(bytes.size()) +
           " bytes but the line says " + std::to_string(length));
    }
    if (bytes.empty()) fail("empty token");

    const auto id32 = static_cast<int32_t>(id);
    if (auto [it, inserted] = line_of_id.emplace(id32, line_no); !inserted) {
      fail("duplicate id " + std::to_string(id) + " (first on line " + std::to_string(it->second) +
           ")");
    }
    if (auto [it, inserted] = line_of_bytes.emplace(bytes, line_no); !inserted) {
      fail("duplicate token " + EscapeForMessage(literal) + " (first on line " +
           std::to_string(it->second) + ")");
    }
    max_id = std::max(max_id, id32);
    entries.push_back({id32, line_no, bytes});
  }
  if (entries.empty()) throw FormatError(std::string(source) + ": vocabulary file has no tokens");

  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.id < b.id; });
  WorldTokenizer tok;
  tok.token_offsets_.assign(static_cast<size_t>(max_id) + 2, 0);
  size_t next = 0;
  for (int32_t id = 0; id <= max_id; ++id) {
    tok.token_offsets_[id] = static_cast<uint32_t>(tok.token_bytes_.size());
    if (next < entries.size() && entries[next].id == id) {
      tok.token_bytes_ += entries[next].bytes;
      ++next;
    }
  }
  if (tok.token_bytes_.size() > UINT32_MAX) {
    throw FormatError(std::string(source) + ": vocabulary too large");
  }
  tok.token_offsets_[max_id + 1] = static_cast<uint32_t>(tok.token_bytes_.size());
  tok.num_tokens_ = static_cast<int32_t>(entries.size());
  tok.source_ = std::string(source);
  tok.BuildIndex();
  return tok;
}

void WorldTokenizer::BuildIndex() {
  byte_id_.assign(256, -1);
  pair_id_.assign(65536, -1);
  max_token_length_ = 0;
  const auto* all = reinterpret_cast<const unsigned char*>(token_bytes_.data());

  // (first two bytes, length) of every token of >= 3 bytes.
  std::vector<std::pair<uint32_t, uint32_t>> prefix_length;
  size_t long_tokens = 0;
  for (int32_t id = 0; id < vocab_size(); ++id) {
    const uint32_t begin = token_offsets_[id];
    const uint32_t length = token_offsets_[id + 1] - begin;
    max_token_length_ = std::max<size_t>(max_token_length_, length);
    if (length == 1) {
      byte_id_[all[begin]] = id;
    } else if (length == 2) {
      pair_id_[all[begin] << 8 | all[begin + 1]] = id;
    } else if (length >= 3) {
      prefix_length.emplace_back(all[begin] << 8 | all[begin + 1], length);
      ++long_tokens;
    }
  }
  // Per prefix, distinct lengths in descending order: the greedy search tries the longest first.
  std::sort(prefix_length.begin(), prefix_length.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  });
  prefix_length.erase(std::unique(prefix_length.begin(), prefix_length.end()), prefix_length.end());
  prefix_length_begin_.assign(65537, 0);
  prefix_lengths_.clear();
  size_t k = 0;
  for (uint32_t prefix = 0; prefix < 65536; ++prefix) {
    prefix_length_begin_[prefix] = static_cast<uint32_t>(prefix_lengths_.size());
    for (; k < prefix_length.size() && prefix_length[k].first == prefix; ++k) {
      prefix_lengths_.push_back(prefix_length[k].second);
    }
  }
  prefix_length_begin_[65536] = static_cast<uint32_t>(prefix_lengths_.size());

  // Load factor <= 1/2 keeps linear-probe chains short.
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, 2 * long_tokens));
  slots_.assign(capacity, Slot{});
  slot_mask_ = capacity - 1;
  // 32 filter bits per token: a false-positive rate of 1 - exp(-1/32) ~ 3%.
  const size_t filter_bits = std::bit_ceil(std::max<size_t>(64, 32 * long_tokens));
  filter_.assign(filter_bits / 64, 0);
  filter_shift_ = 64 - std::countr_zero(filter_bits);
  for (int32_t id = 0; id < vocab_size(); ++id) {
    const uint32_t begin = token_offsets_[id];
    const uint32_t length = token_offsets_[id + 1] - begin;
    if (length < 3) continue;
    const uint64_t head = LoadHead(all + begin, length, all);
    const uint64_t hash = HashToken(all + begin, length, head);
    filter_[(hash >> filter_shift_) / 64] |= uint64_t{1} << ((hash >> filter_shift_) % 64);
    uint64_t idx = hash & slot_mask_;
    while (slots_[idx].length != 0) idx = (idx + 1) & slot_mask_;
    slots_[idx] = Slot{head, id, length};
  }
}

int32_t WorldTokenizer::Find(const unsigned char* s, uint32_t length, uint64_t head,
                             uint64_t hash) const {
  uint64_t idx = hash & slot_mask_;
  while (true) {
    const Slot& slot = slots_[idx];
    if (slot.length == 0) return -1;
    if (slot.length == length && slot.head == head &&
        (length <= 8 ||
         std::memcmp(s + 8, token_bytes_.data() + token_offsets_[slot.id] + 8, length - 8) == 0)) {
      return slot.id;
    }
    idx = (idx + 1) & slot_mask_;
  }
}

std::vector<int32_t> WorldTokenizer::Encode(std::string_view bytes) const {
  std::vector<int32_t> ids;
  ids.reserve(bytes.size() / 3 + 4);  // English averages ~4 bytes a token
  EncodeAppend(bytes, ids);
  return ids;
}

void WorldTokenizer::EncodeAppend(std::string_view bytes, std::vector<int32_t>& out) const {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const size_t remaining = n - i;
    int32_t id = -1;
    size_t length = 1;
    if (remaining >= 2) {
      // Tokens of >= 3 bytes starting with these two bytes, longest first; then the 2-byte token.
      const uint32_t prefix = s[i] << 8 | s[i + 1];
      const uint32_t* candidate = prefix_lengths_.data() + prefix_length_begin_[prefix];
      const uint32_t* candidates_end = prefix_lengths_.data() + prefix_length_begin_[prefix + 1];
      if (candidate != candidates_end) {
        const uint64_t head8 = LoadHead(s + i, remaining, s);
        for (; candidate != candidates_end && id < 0; ++candidate) {
          if (*candidate > remaining) continue;
          const uint64_t head = MaskHead(head8, *candidate);
          const uint64_t hash = HashToken(s + i, *candidate, head);
          if (MayContain(hash)) id = Find(s + i, *candidate, head, hash);
          length = *candidate;
        }
      }
      if (id < 0) {
        id = pair_id_[prefix];
        length = 2;
      }
    }
    if (id < 0) {
      id = byte_id_[s[i]];
      length = 1;
    }
    if (id < 0) {
      static constexpr char kHex[] = "0123456789abcdef";
      throw DataError(std::string("the vocabulary has no token for byte 0x") + kHex[s[i] >> 4] +
                      kHex[s[i] & 15] + " at offset " + std::to_string(i));
    }
    out.push_back(id);
    i += length;
  }
}

std::string WorldTokenizer::Describe() const {
  return "RWKV World vocabulary (" + std::to_string(num_tokens_) + " tokens) from " + source_;
}

std::string_view WorldTokenizer::TokenBytes(int32_t id) const {
  const uint32_t begin = token_offsets_[id];
  return std::string_view(token_bytes_).substr(begin, token_offsets_[id + 1] - begin);
}

std::string WorldTokenizer::Decode(std::span<const int32_t> ids) const {
  size_t total = 0;
  for (size_t k = 0; k < ids.size(); ++k) {
    const int32_t id = ids[k];
    if (id < 0 || id >= vocab_size()) {
      throw UsageError("token id " + std::to_string(id) + " (position " + std::to_string(k) +
                       ") is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    }
    const uint32_t length = token_offsets_[id + 1] - token_offsets_[id];
    if (length == 0) {
      throw UsageError("token id " + std::to_string(id) + " (position " + std::to_string(k) +
                       ") has no token" + (id == 0 ? " (0 is the reserved end-of-text id)" : ""));
    }
    total += length;
  }
  std::string out;
  out.reserve(total);
  for (int32_t id : ids) out += TokenBytes(id);
  return out;
}

}  // namespace rwkv_embed
