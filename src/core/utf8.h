// UTF-8 validation for user text. Every front end (CLI, server, dataset readers) checks user text
// with ValidateUtf8 before tokenizing, so that a bad byte is reported where it occurs instead of
// silently becoming raw-byte tokens.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rwkv_embed {

// Offset of the first byte of the first ill-formed sequence in `text`, or text.size() when the
// whole text is well-formed UTF-8 in the sense of Unicode §3.9 Table 3-7: no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated or stray continuation bytes.
size_t FindInvalidUtf8(std::string_view text);

inline bool IsValidUtf8(std::string_view text) { return FindInvalidUtf8(text) == text.size(); }

// Throws FormatError "invalid UTF-8 in <where> at byte N" (N is the 0-based offset of the first
// byte of the ill-formed sequence, followed by the offending bytes in hex) when `text` is not
// well-formed UTF-8.
void ValidateUtf8(std::string_view text, std::string_view where);

// `text` made safe to quote in an error message: printable ASCII and well-formed multi-byte UTF-8
// as is, tab/newline/CR as \t \n \r, every other byte (NUL, controls, DEL, ill-formed UTF-8) as
// \xNN, so that a message never carries raw binary from a file to a terminal or log. At most about
// `max_bytes` bytes of output (whole characters only), then "…" when `text` is longer.
std::string EscapeForMessage(std::string_view text, size_t max_bytes = 120);

}  // namespace rwkv_embed
