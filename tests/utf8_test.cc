// UTF-8 validation: hand-picked boundary cases, and exhaustive agreement with an independent
// decode-then-check reference over every 1-, 2- and 3-byte string and every 4-byte lead/second
// byte combination.
#include "core/utf8.h"

#include <cstdint>
#include <string>

#include "core/error.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

// Reference, written differently from the library (decode the code point by bit arithmetic, then
// reject overlongs, surrogates and > U+10FFFF by value, as RFC 3629 §3 describes): true iff `s` is
// well-formed.
bool ReferenceValid(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int extra;
    uint32_t cp;
    if (b0 < 0x80) {
      extra = 0, cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      extra = 1, cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
      extra = 2, cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
      extra = 3, cp = b0 & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated
    for (int k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

TEST(Utf8Test, WellFormedBoundaries) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8(std::string(1, '\0')));
  EXPECT_TRUE(IsValidUtf8("plain ASCII, long enough to use the 8-byte fast path"));
  EXPECT_TRUE(IsValidUtf8(Bytes({0x7F})));                    // U+007F
  EXPECT_TRUE(IsValidUtf8(Bytes({0xC2, 0x80})));              // U+0080
  EXPECT_TRUE(IsValidUtf8(Bytes({0xDF, 0xBF})));              // U+07FF
  EXPECT_TRUE(IsValidUtf8(Bytes({0xE0, 0xA0, 0x80})));        // U+0800
  EXPECT_TRUE(IsValidUtf8(Bytes({0xED, 0x9F, 0xBF})));        // U+D7FF
  EXPECT_TRUE(IsValidUtf8(Bytes({0xEE, 0x80, 0x80})));        // U+E000
  EXPECT_TRUE(IsValidUtf8(Bytes({0xEF, 0xBF, 0xBF})));        // U+FFFF
  EXPECT_TRUE(IsValidUtf8(Bytes({0xF0, 0x90, 0x80, 0x80})));  // U+10000
  EXPECT_TRUE(IsValidUtf8(Bytes({0xF4, 0x8F, 0xBF, 0xBF})));  // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("Ünïcödé — “quotes” 我们 👩‍💻"));
}

TEST(Utf8Test, IllFormed) {
  const std::string cases[] = {
      Bytes({0x80}),                    // stray continuation
      Bytes({0xBF}),                    //
      Bytes({0xC0, 0x80}),              // overlong U+0000
      Bytes({0xC1, 0xBF}),              // overlong U+007F
      Bytes({0xE0, 0x80, 0x80}),        // overlong 3-byte
      Bytes({0xE0, 0x9F, 0xBF}),        // overlong U+07FF
      Bytes({0xF0, 0x80, 0x80, 0x80}),  // overlong 4-byte
      Bytes({0xF0, 0x8F, 0xBF, 0xBF}),  // overlong U+FFFF
      Bytes({0xED, 0xA0, 0x80}),        // U+D800
      Bytes({0xED, 0xBF, 0xBF}),        // U+DFFF
      Bytes({0xF4, 0x90, 0x80, 0x80}),  // U+110000
      Bytes({0xF5, 0x80, 0x80, 0x80}),  // lead byte above F4
      Bytes({0xFF}),                    //
      Bytes({0xE2, 0x82}),              // truncated at the end
      Bytes({0xE2, 0x82, 0x41}),        // truncated before ASCII
      Bytes({0xF0, 0x9F, 0x98}),        // truncated 4-byte
      Bytes({0xC3}),                    //
  };
  for (const auto& s : cases) {
    EXPECT_FALSE(IsValidUtf8(s)) << ::testing::PrintToString(s);
    EXPECT_FALSE(ReferenceValid(s)) << "reference disagrees on " << ::testing::PrintToString(s);
    EXPECT_EQ(FindInvalidUtf8(s), 0u);
  }
}

TEST(Utf8Test, OffsetOfFirstBadSequence) {
  // Place one bad byte at every offset of a 40-byte ASCII/multibyte text, crossing the 8-byte
  // ASCII fast path at every alignment.
  const std::string base = "0123456789abcdefghij\xC3\xA9klmnopqrstuvwxyzAB";
  for (size_t pos = 0; pos <= base.size(); ++pos) {
    if (pos == 21) continue;  // inside the two-byte é
    std::string s = base;
    s.insert(pos, 1, '\xFF');
    EXPECT_EQ(FindInvalidUtf8(s), pos);
    try {
      ValidateUtf8(s, "the test input");
      ADD_FAILURE() << "no error at " << pos;
    } catch (const FormatError& e) {
      EXPECT_EQ(
          std::string(e.what()).rfind(
              "invalid UTF-8 in the test input at byte " + std::to_string(pos) + " (bytes ff", 0),
          0u)
          << e.what();
    }
  }
  EXPECT_NO_THROW(ValidateUtf8(base, "the test input"));
  EXPECT_EQ(FindInvalidUtf8(base), base.size());
  // The offset is where the ill-formed sequence starts, not where it is detected.
  EXPECT_EQ(FindInvalidUtf8("abc" + Bytes({0xE2, 0x82, 0x41})), 3u);
}

TEST(Utf8Test, ExhaustiveAgreementWithReference) {
  // Every string of 1, 2 or 3 bytes (16.8 M of length 3): with its bytes anywhere on 0..255 this
  // covers every lead byte, every second-byte range and truncation.
  std::string s(3, '\0');
  size_t disagreements = 0, valid3 = 0;
  for (int a = 0; a < 256; ++a) {
    s[0] = static_cast<char>(a);
    const std::string one(1, s[0]);
    disagreements += IsValidUtf8(one) != ReferenceValid(one);
    for (int b = 0; b < 256; ++b) {
      s[1] = static_cast<char>(b);
      const std::string two = s.substr(0, 2);
      disagreements += IsValidUtf8(two) != ReferenceValid(two);
      for (int c = 0; c < 256; ++c) {
        s[2] = static_cast<char>(c);
        const bool got = IsValidUtf8(s);
        valid3 += got;
        disagreements += got != ReferenceValid(s);
      }
    }
  }
  EXPECT_EQ(disagreements, 0u);
  // Count of well-formed 3-byte strings, by hand: 3 ASCII chars (128^3 = 2097152) + ASCII and a
  // 2-byte char in either order (2 * 128 * 1920 = 491520) + one 3-byte char (0x800..0xFFFF minus
  // 2048 surrogates = 61440): 2650112.
  EXPECT_EQ(valid3, 2650112u);
  // 4-byte sequences: every lead and second byte, with valid and invalid third/fourth bytes.
  for (int a = 0xF0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c : {0x41, 0x80, 0xBF, 0xC0}) {
        for (int d : {0x41, 0x80, 0xBF, 0xC0}) {
          const std::string four = Bytes({a, b, c, d});
          ASSERT_EQ(IsValidUtf8(four), ReferenceValid(four)) << ::testing::PrintToString(four);
        }
      }
    }
  }
}

}  // namespace
}  // namespace rwkv_embed
