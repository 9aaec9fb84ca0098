// A strict UTF-8 validator for dataset text. Data-local on purpose: main has since gained
// src/core/utf8.h with the same contract (rwkv_embed::FindInvalidUtf8, text.size() when valid);
// this copy lives in rwkv_embed::data so the two cannot clash, and deduping is a rename.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rwkv_embed::data {

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence, or text.size()
// when `text` is valid. Well-formed per Unicode 15 Table 3-7: no overlong
// forms (C0, C1, E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), nothing above U+10FFFF
// (F4 90.., F5..FF), no truncated sequences.
inline size_t FindInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return n;
}

}  // namespace rwkv_embed::data
