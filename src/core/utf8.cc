#include "core/utf8.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"

namespace rwkv_embed {
namespace {

// Length of the well-formed sequence starting at s[0] (s has n >= 1 bytes), or 0 when ill-formed.
// The second-byte ranges are those of Unicode §3.9 Table 3-7 ("Well-Formed UTF-8 Byte
// Sequences"); they are what excludes overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF)
// and code points above U+10FFFF (F4 90..BF, F5..FF).
inline size_t SequenceLength(const unsigned char* s, size_t n) {
  const unsigned char b0 = s[0];
  if (b0 < 0x80) return 1;
  auto cont = [](unsigned char b) { return (b & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return n >= 2 && cont(s[1]) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (n < 3) return 0;
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    return s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (n < 4) return 0;
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
  }
  return 0;  // 80..C1 (stray continuation or overlong 2-byte lead), F5..FF
}

}  // namespace

size_t FindInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time: most text is mostly ASCII.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) != 0) break;
      i += 8;
    }
    if (i >= n) break;
    const size_t len = SequenceLength(s + i, n - i);
    if (len == 0) return i;
    i += len;
  }
  return n;
}

void ValidateUtf8(std::string_view text, std::string_view where) {
  const size_t bad = FindInvalidUtf8(text);
  if (bad == text.size()) return;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string bytes;
  for (size_t i = bad; i < text.size() && i < bad + 4; ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (!bytes.empty()) bytes += ' ';
    bytes += kHex[b >> 4];
    bytes += kHex[b & 15];
  }
  throw FormatError("invalid UTF-8 in " + std::string(where) + " at byte " + std::to_string(bad) +
                    " (bytes " + bytes + ")");
}

std::string EscapeForMessage(std::string_view text, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  std::string out;
  size_t i = 0;
  while (i < n && out.size() < max_bytes) {
    const unsigned char b = s[i];
    if (b >= 0x20 && b < 0x7F) {
      out += static_cast<char>(b);
      ++i;
    } else if (b == '\t' || b == '\n' || b == '\r') {
      out += b == '\t' ? "\\t" : b == '\n' ? "\\n" : "\\r";
      ++i;
    } else if (const size_t len = b >= 0x80 ? SequenceLength(s + i, n - i) : 0; len > 0) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 15];
      ++i;
    }
  }
  if (i < n) out += "\u2026";  // "…"
  return out;
}

}  // namespace rwkv_embed
