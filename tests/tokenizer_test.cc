// WorldTokenizer: exact ids on the 23,504 golden texts, round trips, edge cases, the escape forms
// of the vocabulary format, and every malformed-vocabulary error naming its line.
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {
namespace {

// Whether `text` contains `needle` (with both shown on failure).
::testing::AssertionResult HasSubstr(const std::string& text, const std::string& needle) {
  if (text.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "`" << text << "` lacks `" << needle << "`";
}

std::string Join(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

// The real vocabulary, loaded once for the whole suite.
class WorldVocabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto path = testing::SharedFile("models/rwkv_vocab_v20230424.txt");
    if (!path.empty()) tok_ = std::make_unique<WorldTokenizer>(WorldTokenizer::FromVocabFile(path));
  }
  static void TearDownTestSuite() { tok_.reset(); }
  void SetUp() override {
    if (!tok_) GTEST_SKIP() << "shared file absent: models/rwkv_vocab_v20230424.txt";
  }
  static std::unique_ptr<WorldTokenizer> tok_;
};
std::unique_ptr<WorldTokenizer> WorldVocabTest::tok_;

TEST_F(WorldVocabTest, RealVocabularyShape) {
  // The file has ids 1..65529; RWKV models pad their embedding table to 65536 rows.
  EXPECT_EQ(tok_->vocab_size(), 65530);
  EXPECT_EQ(tok_->num_tokens(), 65529);
  EXPECT_EQ(tok_->max_token_length(), 128u);
  // Ids 1..256 are the single bytes 0x00..0xFF, in order (str literals up to '\x7f', then b'\x80').
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(tok_->TokenBytes(b + 1), std::string(1, static_cast<char>(b))) << "byte " << b;
  }
  EXPECT_EQ(tok_->TokenBytes(0), "");
  // Lines with quotes, escapes and \u: `40 "'" 1`, `269 ' "' 2`, `9804 '\u2002' 3`.
  EXPECT_EQ(tok_->TokenBytes(40), "'");
  EXPECT_EQ(tok_->TokenBytes(269), " \"");
  EXPECT_EQ(tok_->TokenBytes(9804), "\xE2\x80\x82");
  EXPECT_EQ(tok_->TokenBytes(65529), std::string(128, ' '));
}

TEST_F(WorldVocabTest, GoldenIdsExact) {
  RWKV_EMBED_REQUIRE_SHARED(path, "data/tokenizer-golden.jsonl");
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path;
  std::string line;
  size_t total = 0, exact = 0, round_trips = 0, line_no = 0;
  std::string first_mismatch;
  std::vector<int32_t> ids;
  while (std::getline(in, line)) {
    ++line_no;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      FAIL() << path << " line " << line_no << ": " << e.what();
    }
    const std::string text = record.at("text").get<std::string>();
    const std::vector<int32_t> want = record.at("ids").get<std::vector<int32_t>>();
    ids.clear();
    tok_->EncodeAppend(text, ids);
    ++total;
    if (ids == want) {
      ++exact;
    } else if (first_mismatch.empty()) {
      first_mismatch = "line " + std::to_string(line_no) + " text " + nlohmann::json(text).dump() +
                       "\n  want " + Join(want) + "\n  got  " + Join(ids);
    }
    if (tok_->Decode(ids) == text) ++round_trips;
  }
  std::cout << "golden: " << exact << " / " << total << " texts give exactly the golden ids, "
            << round_trips << " round-trip\n";
  EXPECT_EQ(total, 23504u);
  EXPECT_EQ(exact, total) << "first mismatch: " << first_mismatch;
  EXPECT_EQ(round_trips, total);
}

TEST_F(WorldVocabTest, EdgeCases) {
  EXPECT_TRUE(tok_->Encode("").empty());
  // Each single byte alone is its own token, id = byte + 1 -- invalid UTF-8 bytes included.
  for (int b = 0; b < 256; ++b) {
    const std::string s(1, static_cast<char>(b));
    EXPECT_EQ(tok_->Encode(s), std::vector<int32_t>{b + 1}) << "byte " << b;
  }
  // Invalid UTF-8 (stray continuation, overlong, lone surrogate, truncated) tokenizes as raw bytes
  // at library level and decodes back to the same bytes.
  for (const std::string bad : {"\xff\xfe", "\x80", "\xC0\x80", "\xED\xA0\x80", "ab\xE2\x82"}) {
    const auto ids = tok_->Encode(bad);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok_->Decode(ids), bad);
  }
  EXPECT_EQ(tok_->Encode("\xff\xfe"), (std::vector<int32_t>{256, 255}));
  // Greedy longest match takes the 128-space token, then the remainder.
  EXPECT_EQ(tok_->Encode(std::string(129, ' ')), (std::vector<int32_t>{65529, 33}));
  // From the golden file: "Hello world!".
  EXPECT_EQ(tok_->Encode("Hello world!"), (std::vector<int32_t>{33155, 40213, 34}));
}

TEST_F(WorldVocabTest, NeverReadsPastTheText) {
  // Every suffix of a text with long tokens (128 spaces, 80 '#'), taken from an exactly-sized heap
  // buffer: the 8-byte loads near the end must stay inside it (checked by the ASan build), and a
  // view must tokenize like the same bytes in a std::string.
  const std::string text =
      "Hello world! " + std::string(130, ' ') + std::string(81, '#') + " x\xE2\x80";
  for (size_t start = 0; start < text.size(); ++start) {
    const size_t n = text.size() - start;
    const auto buffer = std::make_unique<char[]>(n);
    std::memcpy(buffer.get(), text.data() + start, n);
    const std::vector<int32_t> ids = tok_->Encode(std::string_view(buffer.get(), n));
    EXPECT_EQ(ids, tok_->Encode(text.substr(start))) << "suffix at " << start;
    EXPECT_EQ(tok_->Decode(ids), text.substr(start));
  }
  // The 80-'#' token (id 65527) is used, then the leftover '#'.
  EXPECT_EQ(tok_->Encode(std::string(81, '#')).front(), 65527);
}

TEST_F(WorldVocabTest, EncodeAppendKeepsExistingIds) {
  std::vector<int32_t> ids = {7};
  tok_->EncodeAppend("Hello world!", ids);
  tok_->EncodeAppend("", ids);
  tok_->EncodeAppend(" ", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{7, 33155, 40213, 34, 33}));
}

TEST_F(WorldVocabTest, DecodeRejectsBadIds) {
  const std::vector<std::pair<int32_t, std::string>> cases = {
      {65530, "token id 65530"}, {-1, "token id -1"}, {0, "token id 0"}, {1 << 30, "1073741824"}};
  for (const auto& [id, needle] : cases) {
    const std::vector<int32_t> ids = {98, id};
    try {
      tok_->Decode(ids);
      ADD_FAILURE() << "no error for id " << id;
    } catch (const UsageError& e) {
      EXPECT_TRUE(HasSubstr(e.what(), needle));
      EXPECT_TRUE(HasSubstr(e.what(), "position 1"));
    }
  }
  EXPECT_EQ(tok_->Decode(std::vector<int32_t>{}), "");
}

// ---- Small hand-written vocabularies: the greedy algorithm and the file format ----------------

WorldTokenizer FromLines(const std::string& text) {
  return WorldTokenizer::FromVocabText(text, "test.vocab");
}

TEST(WorldTokenizerTest, GreedyLongestMatch) {
  const auto tok = FromLines(
      "1 'a' 1\n2 'b' 1\n3 'c' 1\n4 'd' 1\n5 'x' 1\n6 'ab' 2\n7 'abc' 3\n8 'bcd' 3\n9 'bc' 2\n"
      "10 'abcdefghijk' 11\n11 'e' 1\n12 'bcde' 4\n");
  EXPECT_EQ(tok.vocab_size(), 13);
  EXPECT_EQ(tok.Encode("abcx"), (std::vector<int32_t>{7, 5}));
  EXPECT_EQ(tok.Encode("bcdbc"), (std::vector<int32_t>{8, 9}));
  EXPECT_EQ(tok.Encode("abd"), (std::vector<int32_t>{6, 4}));
  // Greedy, not fewest tokens: "abc","d","e" although "a","bcde" would be two.
  EXPECT_EQ(tok.Encode("abcde"), (std::vector<int32_t>{7, 4, 11}));
  // A token longer than the 8-byte hash head.
  EXPECT_EQ(tok.Encode("xabcdefghijkx"), (std::vector<int32_t>{5, 10, 5}));
  // Matches must not run past the end of the text.
  EXPECT_EQ(tok.Encode("ab"), (std::vector<int32_t>{6}));
  EXPECT_EQ(tok.Encode("bcd"), (std::vector<int32_t>{8}));
  // A byte without any token cannot be encoded: an error naming byte and offset, never a skip.
  try {
    tok.Encode("abcdefghij");
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_TRUE(HasSubstr(e.what(), "byte 0x66 at offset 5"));
  }
}

TEST(WorldTokenizerTest, EveryEscapeForm) {
  // Expected bytes worked out by hand from the Python reference manual (and checked with
  // python3: ast.literal_eval(lit), .encode('utf-8') for str).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"('\\')", "\\"},
      {R"('\'')", "'"},
      {R"("\"")", "\""},
      {R"("'")", "'"},
      {R"('"')", "\""},
      {R"('\n\t\r')", "\n\t\r"},
      {R"('\a\b\f\v')", "\a\b\f\v"},
      {R"('\0')", std::string(1, '\0')},
      {R"('\101\60\7')", "A0\a"},
      {R"('\1010')", "A0"},  // octal takes at most 3 digits
      {R"('\x41\x7f')", "A\x7f"},
      {R"('\xe9')", "\xC3\xA9"},  // str: \xe9 is U+00E9, two UTF-8 bytes
      {R"(b'\xe9')", "\xE9"},     // bytes: one byte
      {R"(b"\x80\xff\n\\\"")", "\x80\xff\n\\\""},
      {R"('\u00e9\u20AC')", "\xC3\xA9\xE2\x82\xAC"},
      {R"('\U0001F600')", "\xF0\x9F\x98\x80"},
      {R"('\U0010FFFF')", "\xF4\x8F\xBF\xBF"},
      {R"('\777')", "\xC7\xBF"},                             // str octal up to U+01FF
      {"'\xC3\xA9 \xE2\x82\xAC'", "\xC3\xA9 \xE2\x82\xAC"},  // raw UTF-8 and a space inside
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string vocab_line =
        std::to_string(i + 1) + " " + cases[i].first + " " + std::to_string(cases[i].second.size());
    const auto tok = FromLines(vocab_line + "\n");
    EXPECT_EQ(tok.TokenBytes(static_cast<int32_t>(i + 1)), cases[i].second) << vocab_line;
  }
}

TEST(WorldTokenizerTest, CrLfAndMissingFinalNewline) {
  const auto tok = FromLines("1 'a' 1\r\n3 'ab' 2");
  EXPECT_EQ(tok.vocab_size(), 4);
  EXPECT_EQ(tok.num_tokens(), 2);
  EXPECT_EQ(tok.Encode("aba"), (std::vector<int32_t>{3, 1}));
}

// Each malformed line is rejected with FormatError naming the file, the line and the problem.
TEST(WorldTokenizerTest, MalformedVocabularyNamesTheLine) {
  const std::string good = "1 'a' 1\n2 'b' 1\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"3 'c' 2", "has 1 bytes but the line says 2"},
      {"3 'c 1", "unterminated literal"},
      {"3 'c\\' 1", "unterminated literal"},
      {"3 'c'd' 1", "unexpected text after the closing quote"},
      {"3 '\\q' 1", "bad escape `\\q`"},
      {"3 '\\x4' 1", "bad escape `\\x4"},
      {"3 '\\u12' 1", "bad escape `\\u12"},
      {"3 b'\\u1234' 1", "not an escape in a bytes literal"},
      {"3 b'\\777' 1", "octal value above"},
      {"3 '\\ud800' 3", "surrogate"},
      {"3 '\\U00110000' 4", "above U+10FFFF"},
      {"3 '\\N{DASH}' 1", "bad escape `\\N`"},
      {"3 b'\xC3\xA9' 2", "non-ASCII character in a bytes literal"},
      {"3 c 1", "expected a Python str or bytes literal"},
      {"3 r'c' 1", "expected a Python str or bytes literal"},
      {"x3 'c' 1", "id `x3` is not an integer"},
      {"-3 'c' 1", "id `-3` is not an integer"},
      {"99999999999 'c' 1", "is not an integer"},
      {"3 'c' one", "byte length `one`"},
      {"3 'c' ", "byte length ``"},
      {"3 'c'", "expected `ID <python literal> BYTE_LENGTH`"},
      {"3", "expected `ID <python literal> BYTE_LENGTH`"},
      {"", "empty line"},
      {"0 'c' 1", "id 0 is reserved"},
      {"2 'c' 1", "duplicate id 2 (first on line 2)"},
      {"3 'a' 1", "duplicate token 'a' (first on line 1)"},
      {"3 \"a\" 1", "duplicate token \"a\" (first on line 1)"},
      {"3 '' 0", "empty token"},
      {"3 '\xC3' 1", "invalid UTF-8 in test.vocab, line 3 at byte 3"},
  };
  for (const auto& [line, needle] : cases) {
    try {
      FromLines(good + line + "\n4 'd' 1\n");
      ADD_FAILURE() << "accepted: " << line;
    } catch (const FormatError& e) {
      EXPECT_TRUE(HasSubstr(e.what(), "test.vocab, line 3")) << line;
      EXPECT_TRUE(HasSubstr(e.what(), needle)) << line;
    }
  }
  EXPECT_THROW(FromLines(""), FormatError);
}

TEST(WorldTokenizerTest, MissingFileIsIoError) {
  const auto path = testing::TempDir() / "no-such-vocab.txt";
  try {
    WorldTokenizer::FromVocabFile(path);
    ADD_FAILURE() << "no error";
  } catch (const IoError& e) {
    EXPECT_TRUE(HasSubstr(e.what(), "no-such-vocab.txt"));
  }
}

TEST(WorldTokenizerTest, FromFileMatchesFromText) {
  const auto path = testing::TempDir() / "small.vocab";
  std::ofstream(path, std::ios::binary) << "1 'a' 1\n2 b'\\xff' 1\n5 'a\\xff' 3\n";
  const auto tok = WorldTokenizer::FromVocabFile(path);
  EXPECT_EQ(tok.vocab_size(), 6);
  EXPECT_EQ(tok.Encode("a\xC3\xBF"
                       "a\xff"),
            (std::vector<int32_t>{5, 1, 2}));
  try {
    std::ofstream(path, std::ios::binary) << "1 'a' 1\n2 'b' 2\n";
    WorldTokenizer::FromVocabFile(path);
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_TRUE(HasSubstr(e.what(), path.string() + ", line 2"));
  }
}

}  // namespace
}  // namespace rwkv_embed
