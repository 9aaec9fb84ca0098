// Tests for src/baselines: word tokenizers, the word-vector loader, averaged word vectors and SIF.
// Expected tokenizations were produced with Python 3's str.split() and
// re.findall(r'\w+|[^\w\s]', s) (on ASCII input; the documented non-ASCII deviations are
// spelled out where tested). Expected embeddings are computed by hand in the comments.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "baselines/averaged_word_embedder.h"
#include "baselines/sif_embedder.h"
#include "baselines/word_tokenizer.h"
#include "baselines/word_vectors.h"
#include "core/error.h"
#include "test_util.h"

namespace rwkv_embed::baselines {
namespace {

using Tokens = std::vector<std::string>;

Tokens Ws(std::string_view s, bool lower = false) {
  return TokenizeWords(s, WordTokenizer::kWhitespace, lower);
}
Tokens Rx(std::string_view s, bool lower = false) {
  return TokenizeWords(s, WordTokenizer::kRegex, lower);
}

std::filesystem::path WriteFile(const std::filesystem::path& dir, const std::string& name,
                                const std::string& content) {
  auto path = dir / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// Expects LoadText(content) to throw FormatError whose message names `file:line` and `what`.
void ExpectFormatError(const std::string& content, int line, const std::string& what) {
  const auto path = WriteFile(::rwkv_embed::testing::TempDir(), "bad.txt", content);
  try {
    WordVectors::LoadText(path);
    ADD_FAILURE() << "no FormatError for:\n" << content;
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string() + ":" + std::to_string(line) + ":"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenizers

TEST(WordTokenizerTest, WhitespaceMatchesPythonStrSplit) {
  EXPECT_EQ(Ws("Hello, world!"), (Tokens{"Hello,", "world!"}));
  EXPECT_EQ(Ws("  He said \"don't\"  go.\t\tNow\n"),
            (Tokens{"He", "said", "\"don't\"", "go.", "Now"}));
  // \v \f \r and the ASCII separators \x1c-\x1f are str.isspace() too.
  EXPECT_EQ(Ws("a\x1c"
               "b\x0b"
               "c\x0c"
               "d\re"),
            (Tokens{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(Ws("U.S.-based $3.50 (approx.) 50%"),
            (Tokens{"U.S.-based", "$3.50", "(approx.)", "50%"}));
  EXPECT_TRUE(Ws("").empty());
  EXPECT_TRUE(Ws("   \t\n ").empty());
}

TEST(WordTokenizerTest, WhitespaceKeepsUnicodeWhitespaceInsideTokens) {
  // Python's str.split() would split at U+00A0; the ASCII scanner (documented) does not.
  EXPECT_EQ(Ws("caf\u00e9 na\u00efve\u00a0x a\u2014b"),
            (Tokens{"caf\u00e9", "na\u00efve\u00a0x", "a\u2014b"}));
}

TEST(WordTokenizerTest, RegexMatchesPythonWordPunctuationSplit) {
  EXPECT_EQ(Rx("Hello, world!"), (Tokens{"Hello", ",", "world", "!"}));
  EXPECT_EQ(Rx("  He said \"don't\"  go.\t\tNow\n"),
            (Tokens{"He", "said", "\"", "don", "'", "t", "\"", "go", ".", "Now"}));
  EXPECT_EQ(Rx("U.S.-based $3.50 (approx.) 50%"),
            (Tokens{"U", ".", "S", ".", "-", "based", "$", "3", ".", "50", "(", "approx", ".", ")",
                    "50", "%"}));
  EXPECT_EQ(Rx("''Quote'' ``tex``"),
            (Tokens{"'", "'", "Quote", "'", "'", "`", "`", "tex", "`", "`"}));
  EXPECT_EQ(Rx("snake_case x2y"), (Tokens{"snake_case", "x2y"}));
  EXPECT_EQ(Rx("a\x1c"
               "b"),
            (Tokens{"a", "b"}));
  EXPECT_TRUE(Rx("").empty());
  EXPECT_TRUE(Rx(" \t ").empty());
}

TEST(WordTokenizerTest, RegexTreatsNonAsciiAsWordCharacters) {
  // Accented letters stay whole (as in Python); non-ASCII punctuation and U+00A0 are glued to the
  // word (documented deviation: Python would give "a", "\u2014", "b" and split at U+00A0).
  EXPECT_EQ(Rx("caf\u00e9, na\u00efve\u00a0x a\u2014b \u201cq\u201d."),
            (Tokens{"caf\u00e9", ",", "na\u00efve\u00a0x", "a\u2014b", "\u201cq\u201d", "."}));
  // Never split inside a UTF-8 sequence, even next to ASCII punctuation.
  EXPECT_EQ(Rx("(\u00e9)"), (Tokens{"(", "\u00e9", ")"}));
}

TEST(WordTokenizerTest, LowercasesAsciiOnly) {
  EXPECT_EQ(Ws("The CAT \u00c9t\u00c9", true), (Tokens{"the", "cat", "\u00c9t\u00c9"}));
  EXPECT_EQ(Rx("Don'T", true), (Tokens{"don", "'", "t"}));
}

TEST(WordTokenizerTest, ParsesNames) {
  EXPECT_EQ(ParseWordTokenizer("whitespace"), WordTokenizer::kWhitespace);
  EXPECT_EQ(ParseWordTokenizer("regex"), WordTokenizer::kRegex);
  EXPECT_EQ(WordTokenizerName(WordTokenizer::kRegex), "regex");
  EXPECT_EQ(WordTokenizerName(WordTokenizer::kWhitespace), "whitespace");
  EXPECT_THROW(ParseWordTokenizer("spacy"), UsageError);
}

// ---------------------------------------------------------------------------------------------
// Word-vector loading

TEST(WordVectorsTest, LoadsGloveText) {
  const auto path = WriteFile(::rwkv_embed::testing::TempDir(), "v.txt",
                              "the 1 2 3\ncat 0.5 -1 4\nsat -2 0 1e-1\n");
  const auto wv = WordVectors::LoadText(path);
  EXPECT_EQ(wv.format(), WordVectors::Format::kGlove);
  EXPECT_EQ(wv.size(), 3);
  EXPECT_EQ(wv.dim(), 3);
  EXPECT_EQ(wv.duplicates(), 0);
  ASSERT_NE(wv.Find("cat"), nullptr);
  EXPECT_EQ(std::vector<float>(wv.Find("cat"), wv.Find("cat") + 3),
            (std::vector<float>{0.5f, -1.0f, 4.0f}));
  EXPECT_EQ(wv.Find("sat")[2], 0.1f);
  EXPECT_EQ(wv.Find("dog"), nullptr);
  EXPECT_EQ(wv.Find("Cat"), nullptr);
}

TEST(WordVectorsTest, ParsesEveryDecimalSpellingLikeStrtof) {
  // Long mantissas, explicit '+', upper-case exponents and subnormals take the general parser;
  // the results must be the correctly rounded floats, as strtof gives.
  const std::vector<std::string> values = {"+1.5",  "0.123456789012", "1.5E+3", "-2.5e-12",
                                           "1e-40", "3.4028235e38",   "-0",     ".5",
                                           "7.",    "16777217",       "1e-50",  "0.0000000001"};
  std::string line = "w";
  for (const auto& v : values) line += " " + v;
  const auto wv =
      WordVectors::LoadText(WriteFile(::rwkv_embed::testing::TempDir(), "v.txt", line + "\n"));
  ASSERT_EQ(wv.dim(), static_cast<int64_t>(values.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    const float expected = std::strtof(values[i].c_str(), nullptr);
    EXPECT_EQ(std::bit_cast<uint32_t>(wv.Find("w")[i]), std::bit_cast<uint32_t>(expected))
        << values[i];
  }
}

TEST(WordVectorsTest, DetectsWord2VecHeader) {
  // word2vec's C writer leaves a space before '\n'; also accept CRLF and no final newline.
  const auto path =
      WriteFile(::rwkv_embed::testing::TempDir(), "w2v.txt", "3 2\r\na 1 2 \r\nb 3 4\r\n</s> 5 6");
  const auto wv = WordVectors::LoadText(path);
  EXPECT_EQ(wv.format(), WordVectors::Format::kWord2Vec);
  EXPECT_EQ(wv.size(), 3);
  EXPECT_EQ(wv.dim(), 2);
  EXPECT_EQ(wv.Find("b")[1], 4.0f);
  EXPECT_EQ(wv.Find("</s>")[0], 5.0f);
  EXPECT_EQ(wv.Find("3"), nullptr);
}

TEST(WordVectorsTest, NumericWordOnFirstLineIsNotAHeader) {
  // Three fields: a GloVe row for the word "3" (dim 2), not a `N D` header.
  const auto path = WriteFile(::rwkv_embed::testing::TempDir(), "v.txt", "3 2 5\nfour 1 1\n");
  const auto wv = WordVectors::LoadText(path);
  EXPECT_EQ(wv.format(), WordVectors::Format::kGlove);
  EXPECT_EQ(wv.dim(), 2);
  EXPECT_EQ(wv.Find("3")[1], 5.0f);
}

TEST(WordVectorsTest, DuplicateWordsKeepTheFirstAndAreCounted) {
  const auto path =
      WriteFile(::rwkv_embed::testing::TempDir(), "v.txt", "a 1 1\nb 2 2\na 9 9\nc 3 3\na 7 7\n");
  const auto wv = WordVectors::LoadText(path);
  EXPECT_EQ(wv.size(), 3);
  EXPECT_EQ(wv.duplicates(), 2);
  EXPECT_EQ(wv.Find("a")[0], 1.0f);
  EXPECT_EQ(wv.Find("c")[0], 3.0f);  // rows after a dropped duplicate stay aligned
  EXPECT_NE(DescribeWordVectors(wv).find("2 duplicate lines skipped"), std::string::npos);
}

TEST(WordVectorsTest, FormatErrorsNameFileAndLine) {
  ExpectFormatError("a 1 2 3\nb 1 2 3\nc 1 2\n", 3, "has 2 values, expected 3");
  ExpectFormatError("a 1 2 3\nb 1 2 3 4\n", 2, "has 4 values, expected 3");
  ExpectFormatError("a 1 2 3\nb 1 x 3\n", 2, "value 2 of word 'b' is not a number: 'x'");
  ExpectFormatError("a 1 2 3\nb 1 2 3.5.1\n", 2, "is not a number");
  ExpectFormatError("a 1 2 3\nb 1 nan 3\n", 2, "not finite");
  ExpectFormatError("a 1 2 3\nb inf 2 3\n", 2, "not finite");
  ExpectFormatError("a 1 2 3\nb -1e39 2 3\n", 2, "is out of float range: '-1e39'");
  ExpectFormatError("a 1 2 3\nb 1 2 1e999\n", 2, "out of float range");
  ExpectFormatError("a 1 2 3\nb 1 2 -\n", 2, "is not a number: '-'");
  ExpectFormatError("a 1 2 3\nb 1 2 1e\n", 2, "is not a number: '1e'");
  ExpectFormatError("a 1 2 3\nb 1 2 3,5\n", 2, "is not a number: '3,5'");
  ExpectFormatError("a 1 2 3\n\nb 1 2 3\n", 2, "blank line");
  ExpectFormatError("a 1 2 3\n 1 2 3\n", 2, "empty word");
  ExpectFormatError(" 1 2 3\n", 1, "empty word");
  ExpectFormatError("\na 1 2 3\n", 1, "blank first line");
  ExpectFormatError("lonely\n", 1, "has no values");
  ExpectFormatError("", 1, "empty file");
  ExpectFormatError("3 2\na 1 2\nb 3 4\n", 1, "declares 3 vectors but the file has 2");
  ExpectFormatError("2 0\n", 1, "dim 0");
  ExpectFormatError("2 2\na 1 2\nb 1\n", 3, "has 1 values, expected 2");
}

TEST(WordVectorsTest, MissingFileIsIoError) {
  EXPECT_THROW(WordVectors::LoadText(::rwkv_embed::testing::TempDir() / "absent.txt"), IoError);
}

TEST(WordVectorsTest, LinesSpanningReadBlocksParseExactly) {
  // ~6 MB: more than one 4 MiB read block, so some line straddles a block boundary.
  constexpr int kWords = 6000, kDim = 100;
  std::string text;
  std::vector<std::string> values;  // printed values, row-major
  // Values of varied magnitude (1e-13 .. 1e12) and precision (1 .. 9 significant digits), so both
  // the fast decimal path and the general parser are compared bit for bit against strtof.
  char buf[32];
  for (int w = 0; w < kWords; ++w) {
    text += "w" + std::to_string(w);
    for (int c = 0; c < kDim; ++c) {
      const double magnitude = std::pow(10.0, (w * 7 + c) % 26 - 13);
      std::snprintf(buf, sizeof buf, "%.*g", 1 + (w + c * 3) % 9,
                    std::sin(0.37 * w + 0.011 * c) * magnitude);
      values.emplace_back(buf);
      text += ' ';
      text += buf;
    }
    text += '\n';
  }
  const auto wv =
      WordVectors::LoadText(WriteFile(::rwkv_embed::testing::TempDir(), "big.txt", text));
  ASSERT_EQ(wv.size(), kWords);
  ASSERT_EQ(wv.dim(), kDim);
  int64_t mismatches = 0;
  for (int w = 0; w < kWords; ++w) {
    const float* v = wv.Find("w" + std::to_string(w));
    ASSERT_NE(v, nullptr) << w;
    for (int c = 0; c < kDim; ++c) {
      const float expected = std::strtof(values[w * kDim + c].c_str(), nullptr);
      mismatches += std::bit_cast<uint32_t>(v[c]) != std::bit_cast<uint32_t>(expected);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// The shared GloVe file, checked against an independent std::istringstream parse of its text.
TEST(WordVectorsTest, SharedGloveFileMatchesItsText) {
  RWKV_EMBED_REQUIRE_SHARED(path, "vectors/glove.6B.100d.mrpc-stsb.txt");
  const auto wv = WordVectors::LoadText(path);
  EXPECT_EQ(wv.format(), WordVectors::Format::kGlove);
  EXPECT_EQ(wv.size(), 19597);
  EXPECT_EQ(wv.dim(), 100);
  EXPECT_EQ(wv.duplicates(), 0);
  ASSERT_NE(wv.Find("the"), nullptr);
  EXPECT_EQ(wv.Find("the")[0], -0.038194f);  // first value of the file's first line
  EXPECT_EQ(wv.Find("the")[1], -0.24487f);
  EXPECT_EQ(wv.Find("The"), nullptr);  // GloVe 6B is lower-cased

  std::ifstream in(path);
  std::string line, word;
  int64_t lines = 0, mismatches = 0;
  while (std::getline(in, line)) {
    ++lines;
    std::istringstream fields(line);
    fields >> word;
    const float* v = wv.Find(word);
    ASSERT_NE(v, nullptr) << word;
    std::string value;
    for (int c = 0; c < 100 && fields >> value; ++c) {
      mismatches += v[c] != std::strtof(value.c_str(), nullptr);
    }
  }
  EXPECT_EQ(lines, 19597);
  EXPECT_EQ(mismatches, 0);
}

// ---------------------------------------------------------------------------------------------
// Averaged word vectors

class AveragedWordEmbedderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = WriteFile(::rwkv_embed::testing::TempDir(), "tiny.txt",
                      "the 1 2 3\ncat 0.5 -1 4\nsat -2 0 1\ns 6 6 6\n");
    vectors_ = std::make_shared<WordVectors>(WordVectors::LoadText(path_));
  }
  static void ExpectRow(const Matrix& m, int64_t r, std::vector<float> expected) {
    const auto report = ::rwkv_embed::testing::CompareClose(m.RowSpan(r), expected, 1e-6, 1e-6);
    EXPECT_EQ(report.violations, 0u) << "row " << r << ": " << report.Describe();
  }
  std::filesystem::path path_;
  std::shared_ptr<const WordVectors> vectors_;
};

TEST_F(AveragedWordEmbedderTest, MeanCountsOovAsZeroAndFlagsEmptySentences) {
  AveragedWordEmbedder embedder(vectors_);
  const std::vector<std::string> sentences = {"The cat sat", "the dog", "Dog ?!", ""};
  const EmbedResult r = embedder.Embed(sentences, EmbedRequest{});
  ASSERT_EQ(r.layers, (std::vector<int>{0}));
  ASSERT_EQ(r.embeddings.size(), 1u);
  ASSERT_EQ(r.embeddings[0].rows(), 4);
  ASSERT_EQ(r.embeddings[0].cols(), 3);
  // (the + cat + sat) / 3 = (-0.5, 1, 8) / 3
  ExpectRow(r.embeddings[0], 0, {-0.5f / 3, 1.0f / 3, 8.0f / 3});
  // (the + 0) / 2: the OOV "dog" is a zero vector counted in the mean
  ExpectRow(r.embeddings[0], 1, {0.5f, 1.0f, 1.5f});
  ExpectRow(r.embeddings[0], 2, {0, 0, 0});
  ExpectRow(r.embeddings[0], 3, {0, 0, 0});
  EXPECT_EQ(r.empty, (std::vector<uint8_t>{0, 0, 1, 1}));
  EXPECT_EQ(r.tokens, 7);
  EXPECT_EQ(embedder.total_tokens(), 7);
  EXPECT_EQ(embedder.oov_tokens(), 3);  // dog, dog, ?!
  EXPECT_EQ(embedder.last_stats().empty_sentences, 2);
  EXPECT_DOUBLE_EQ(embedder.last_stats().OovRate(), 3.0 / 7.0);

  // Counts are per call, not cumulative.
  embedder.Embed(std::vector<std::string>{"cat"}, EmbedRequest{});
  EXPECT_EQ(embedder.total_tokens(), 1);
  EXPECT_EQ(embedder.oov_tokens(), 0);
}

TEST_F(AveragedWordEmbedderTest, MaxPoolsKnownWordsOnlyAndL2NormalisesAfterPooling) {
  AveragedWordEmbedder embedder(vectors_);
  EmbedRequest max_request;
  max_request.pooling = Pooling::kMax;
  const std::vector<std::string> sentences = {"the cat", "sat dog", "dog"};
  const EmbedResult r = embedder.Embed(sentences, max_request);
  ExpectRow(r.embeddings[0], 0, {1, 2, 4});
  ExpectRow(r.embeddings[0], 1, {-2, 0, 1});  // not clipped at 0 by the OOV "dog"
  ExpectRow(r.embeddings[0], 2, {0, 0, 0});
  EXPECT_EQ(r.empty, (std::vector<uint8_t>{0, 0, 1}));

  EmbedRequest l2_request;
  l2_request.normalization = Normalization::kL2;
  const EmbedResult n = embedder.Embed(std::vector<std::string>{"the dog", "dog"}, l2_request);
  // mean (0.5, 1, 1.5) / sqrt(3.5)
  const float s = std::sqrt(3.5f);
  ExpectRow(n.embeddings[0], 0, {0.5f / s, 1.0f / s, 1.5f / s});
  ExpectRow(n.embeddings[0], 1, {0, 0, 0});  // empty stays zero, never NaN
}

TEST_F(AveragedWordEmbedderTest, HonoursTokenizerAndCasingOptions) {
  AveragedWordOptions cased;
  cased.lowercase = false;
  AveragedWordEmbedder cased_embedder(vectors_, cased);
  // "The" is OOV when cased: (0 + cat) / 2
  ExpectRow(cased_embedder.Embed(std::vector<std::string>{"The cat"}, {}).embeddings[0], 0,
            {0.25f, -0.5f, 2.0f});

  AveragedWordOptions regex;
  regex.tokenizer = WordTokenizer::kRegex;
  AveragedWordEmbedder regex_embedder(vectors_, regex);
  // the, cat, ', s -> (the + cat + 0 + s) / 4 = (7.5, 7, 13) / 4
  const EmbedResult r = regex_embedder.Embed(std::vector<std::string>{"The cat's"}, {});
  ExpectRow(r.embeddings[0], 0, {7.5f / 4, 7.0f / 4, 13.0f / 4});
  EXPECT_EQ(regex_embedder.total_tokens(), 4);
  EXPECT_EQ(regex_embedder.oov_tokens(), 1);
}

TEST_F(AveragedWordEmbedderTest, NameDescriptionAndUsageErrors) {
  AveragedWordEmbedder embedder(vectors_);
  EXPECT_EQ(embedder.Name(), "glove");
  EXPECT_EQ(embedder.Dim(), 3);
  EXPECT_EQ(embedder.Layers(), (std::vector<int>{0}));
  const std::string d = embedder.Description();
  EXPECT_NE(d.find(path_.string()), std::string::npos) << d;
  EXPECT_NE(d.find("dim 3"), std::string::npos) << d;
  EXPECT_NE(d.find("tokenizer whitespace"), std::string::npos) << d;
  EXPECT_NE(d.find("lowercase yes"), std::string::npos) << d;

  AveragedWordOptions named;
  named.name = "glove-100d";
  EXPECT_EQ(AveragedWordEmbedder(vectors_, named).Name(), "glove-100d");

  const std::vector<std::string> one = {"the"};
  EmbedRequest layer0;
  layer0.layers = {0};
  EXPECT_NO_THROW(embedder.Embed(one, layer0));
  EmbedRequest layer1;
  layer1.layers = {1};
  EXPECT_THROW(embedder.Embed(one, layer1), UsageError);
  EmbedRequest first;
  first.pooling = Pooling::kFirst;
  EXPECT_THROW(embedder.Embed(one, first), UsageError);
  EXPECT_THROW(AveragedWordEmbedder(nullptr), UsageError);
}

// A real MRPC sentence (un-tokenised, as in the original MSR release) against an average computed
// from the file text independently.
TEST(AveragedWordEmbedderSharedTest, MatchesIndependentAverageOfSharedGlove) {
  RWKV_EMBED_REQUIRE_SHARED(path, "vectors/glove.6B.100d.mrpc-stsb.txt");
  const std::string sentence =
      "Amrozi accused his brother, whom he called \"the witness\", of deliberately distorting his "
      "evidence.";
  const auto tokens = Ws(sentence, true);
  std::map<std::string, std::vector<double>> text_vectors;
  std::ifstream in(path);
  std::string line, word;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    fields >> word;
    if (std::find(tokens.begin(), tokens.end(), word) == tokens.end()) continue;
    std::vector<double>& v = text_vectors[word];
    for (double x; fields >> x;) v.push_back(x);
  }
  std::vector<double> sum(100, 0.0);
  int64_t oov = 0;
  for (const auto& t : tokens) {
    const auto it = text_vectors.find(t);
    if (it == text_vectors.end()) {
      ++oov;
      continue;
    }
    for (int c = 0; c < 100; ++c) sum[c] += it->second[c];
  }
  std::vector<float> expected(100);
  for (int c = 0; c < 100; ++c) expected[c] = static_cast<float>(sum[c] / tokens.size());

  AveragedWordEmbedder embedder(std::make_shared<WordVectors>(WordVectors::LoadText(path)));
  const EmbedResult r = embedder.Embed(std::vector<std::string>{sentence}, {});
  const auto report =
      ::rwkv_embed::testing::CompareClose(r.embeddings[0].RowSpan(0), expected, 1e-6, 1e-6);
  EXPECT_EQ(report.violations, 0u) << report.Describe();
  EXPECT_EQ(embedder.total_tokens(), static_cast<int64_t>(tokens.size()));
  EXPECT_EQ(embedder.oov_tokens(), oov);
  EXPECT_GT(oov, 0);  // "brother," etc.: whitespace tokens keep punctuation
}

// ---------------------------------------------------------------------------------------------
// SIF

TEST(TopEigenvectorTest, FindsTheDominantEigenvectorOfAKnownMatrix) {
  // C = 5 q1 q1^T + 2 q2 q2^T + 1 q3 q3^T with the orthonormal q1 = (1,2,2)/3, q2 = (2,1,-2)/3,
  // q3 = (2,-2,1)/3.
  const double q[3][3] = {{1, 2, 2}, {2, 1, -2}, {2, -2, 1}};
  const double lambdas[3] = {5, 2, 1};
  std::vector<double> c(9, 0.0);
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) c[i * 3 + j] += lambdas[k] * q[k][i] * q[k][j] / 9;
    }
  }
  std::vector<double> u;
  int iterations = 0;
  EXPECT_NEAR(TopEigenvector(c, 3, &u, &iterations), 5.0, 1e-9);
  ASSERT_EQ(u.size(), 3u);
  EXPECT_NEAR(u[0], 1.0 / 3, 1e-9);
  EXPECT_NEAR(u[1], 2.0 / 3, 1e-9);
  EXPECT_NEAR(u[2], 2.0 / 3, 1e-9);
  EXPECT_GT(iterations, 0);

  // A tied top eigenvalue: any unit vector of the eigenspace span{e0, e1} is correct.
  const std::vector<double> tied = {3, 0, 0, 0, 3, 0, 0, 0, 1};
  EXPECT_NEAR(TopEigenvector(tied, 3, &u, &iterations), 3.0, 1e-9);
  EXPECT_NEAR(u[0] * u[0] + u[1] * u[1], 1.0, 1e-9);
  EXPECT_NEAR(u[2], 0.0, 1e-9);

  EXPECT_THROW(TopEigenvector(std::vector<double>(9, 0.0), 3, &u, &iterations), NumericError);
}

class SifEmbedderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::rwkv_embed::testing::TempDir();
    vectors_ = std::make_shared<WordVectors>(
        WordVectors::LoadText(WriteFile(dir_, "v.txt", "a 1 0\nb 0 1\nc 1 1\nd 2 -1\n")));
    options_.a = 0.25;  // round weights for hand computation
  }
  // Corpus counts a:2 b:1 c:1 of 4 tokens -> p = 1/2, 1/4, 1/4; weights a/(a+p) = 1/3, 1/2, 1/2.
  const std::vector<std::string> corpus_ = {"a a b", "c"};
  std::filesystem::path dir_;
  std::shared_ptr<const WordVectors> vectors_;
  SifOptions options_;
};

// Top eigenvector of the fitted X^T X, from the closed form for a symmetric 2x2 matrix
// [[p, q], [q, r]]: lambda1 = (p+r)/2 + sqrt(((p-r)/2)^2 + q^2), u ~ (q, lambda1 - p).
std::vector<double> ExpectedCommonComponent() {
  // X rows: "a a b" -> (2*(1/3)*(1,0) + (1/2)*(0,1)) / 3 = (2/9, 1/6); "c" -> (1/2)(1,1).
  const double x[2][2] = {{2.0 / 9, 1.0 / 6}, {0.5, 0.5}};
  const double p = x[0][0] * x[0][0] + x[1][0] * x[1][0];
  const double q = x[0][0] * x[0][1] + x[1][0] * x[1][1];
  const double r = x[0][1] * x[0][1] + x[1][1] * x[1][1];
  const double lambda1 = (p + r) / 2 + std::sqrt((p - r) * (p - r) / 4 + q * q);
  const double n = std::hypot(q, lambda1 - p);
  return {q / n, (lambda1 - p) / n};
}

TEST_F(SifEmbedderTest, WeightsComeFromFittingCorpusCounts) {
  SifEmbedder sif(vectors_, options_);
  sif.Fit(corpus_);
  EXPECT_DOUBLE_EQ(sif.WordProbability("a"), 0.5);
  EXPECT_DOUBLE_EQ(sif.WordProbability("b"), 0.25);
  EXPECT_DOUBLE_EQ(sif.WordWeight("a"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(sif.WordWeight("b"), 0.5);
  EXPECT_DOUBLE_EQ(sif.WordWeight("c"), 0.5);
  EXPECT_DOUBLE_EQ(sif.WordWeight("d"), 1.0);  // never seen: p = 0
  EXPECT_DOUBLE_EQ(SifEmbedder(vectors_).WordWeight("d"), 1.0);

  // Default a = 1e-3: weight 1e-3 / (1e-3 + 0.5).
  SifEmbedder default_a(vectors_);
  default_a.Fit(corpus_);
  EXPECT_DOUBLE_EQ(default_a.WordWeight("a"), 1e-3 / (1e-3 + 0.5));
}

TEST_F(SifEmbedderTest, RemovesTheHandComputedCommonComponent) {
  SifEmbedder sif(vectors_, options_);
  sif.Fit(corpus_);
  const auto u = ExpectedCommonComponent();
  ASSERT_EQ(sif.common_component().size(), 2u);
  EXPECT_NEAR(sif.common_component()[0], u[0], 1e-9);
  EXPECT_NEAR(sif.common_component()[1], u[1], 1e-9);
  EXPECT_EQ(sif.fit_sentences(), 2);

  // "b d zzz": (1/2 (0,1) + 1 (2,-1) + 0) / 3 = (2/3, -1/6), then minus u u^T v.
  const std::vector<std::string> sentences = {"b d zzz", "a c", "zzz", "B"};
  const EmbedResult r = sif.Embed(sentences, EmbedRequest{});
  const double v[2] = {2.0 / 3, -1.0 / 6};
  const double proj = u[0] * v[0] + u[1] * v[1];
  EXPECT_NEAR(r.embeddings[0].Row(0)[0], v[0] - proj * u[0], 1e-6);
  EXPECT_NEAR(r.embeddings[0].Row(0)[1], v[1] - proj * u[1], 1e-6);
  // Every embedding is orthogonal to u after the removal.
  for (int64_t i = 0; i < r.embeddings[0].rows(); ++i) {
    const float* e = r.embeddings[0].Row(i);
    EXPECT_NEAR(e[0] * u[0] + e[1] * u[1], 0.0, 1e-6) << "row " << i;
  }
  // "zzz" has no known word: empty, zero vector. "B" is lower-cased to the known "b".
  EXPECT_EQ(r.empty, (std::vector<uint8_t>{0, 0, 1, 0}));
  EXPECT_EQ(r.embeddings[0].Row(2)[0], 0.0f);
  EXPECT_EQ(r.embeddings[0].Row(2)[1], 0.0f);
  EXPECT_EQ(r.tokens, 7);
  EXPECT_EQ(sif.last_stats().oov_tokens, 2);
  EXPECT_EQ(sif.last_stats().empty_sentences, 1);

  EmbedRequest l2;
  l2.normalization = Normalization::kL2;
  const EmbedResult n = sif.Embed(sentences, l2);
  const double norm = std::hypot(r.embeddings[0].Row(0)[0], r.embeddings[0].Row(0)[1]);
  EXPECT_NEAR(n.embeddings[0].Row(0)[0], r.embeddings[0].Row(0)[0] / norm, 1e-6);
  EXPECT_NEAR(std::hypot(n.embeddings[0].Row(1)[0], n.embeddings[0].Row(1)[1]), 1.0, 1e-6);
}

TEST_F(SifEmbedderTest, FitAndApplyAreSeparate) {
  SifEmbedder sif(vectors_, options_);
  const std::vector<std::string> scored = {"d d b", "d c"};
  EXPECT_THROW(sif.Embed(scored, EmbedRequest{}), UsageError);  // before Fit

  sif.Fit(corpus_);
  const auto u_before =
      std::vector<double>(sif.common_component().begin(), sif.common_component().end());
  const EmbedResult first = sif.Embed(scored, EmbedRequest{});
  // Embedding the scored split does not learn from it: weights and u are unchanged.
  EXPECT_DOUBLE_EQ(sif.WordProbability("d"), 0.0);
  EXPECT_EQ(std::vector<double>(sif.common_component().begin(), sif.common_component().end()),
            u_before);
  const EmbedResult again = sif.Embed(scored, EmbedRequest{});
  EXPECT_EQ(
      std::vector<float>(first.embeddings[0].Flat().begin(), first.embeddings[0].Flat().end()),
      std::vector<float>(again.embeddings[0].Flat().begin(), again.embeddings[0].Flat().end()));

  // Fitting on the scored split instead gives different weights and a different u.
  SifEmbedder leaky(vectors_, options_);
  leaky.Fit(scored);
  EXPECT_DOUBLE_EQ(leaky.WordProbability("d"), 0.6);
  EXPECT_GT(std::fabs(leaky.common_component()[0] - u_before[0]), 1e-3);
}

TEST_F(SifEmbedderTest, FrequencyFileFixesWeightsIndependentlyOfTheCorpus) {
  SifEmbedder sif(vectors_, options_);
  // "A" and "a" merge under lower-casing: a 2, b 1, c 1 -> the same p(w) as corpus_.
  sif.LoadWordFrequencies(WriteFile(dir_, "freq.txt", "A 1\na 1\r\nb\t1\nc 1 \n"));
  EXPECT_DOUBLE_EQ(sif.WordProbability("a"), 0.5);
  EXPECT_FALSE(sif.fitted());
  // Fitting on another corpus computes u from it but keeps the file's weights.
  sif.Fit(std::vector<std::string>{"d d d", "a c"});
  EXPECT_DOUBLE_EQ(sif.WordProbability("a"), 0.5);
  EXPECT_DOUBLE_EQ(sif.WordProbability("d"), 0.0);
  EXPECT_NE(sif.Description().find("freq.txt"), std::string::npos);

  // Same weights and corpus as the counted fit -> the same embeddings.
  SifEmbedder from_file(vectors_, options_);
  from_file.LoadWordFrequencies(dir_ / "freq.txt");
  from_file.Fit(corpus_);
  SifEmbedder counted(vectors_, options_);
  counted.Fit(corpus_);
  const std::vector<std::string> s = {"a b d"};
  const auto x = from_file.Embed(s, {}).embeddings[0];
  const auto y = counted.Embed(s, {}).embeddings[0];
  EXPECT_NEAR(x.Row(0)[0], y.Row(0)[0], 1e-7);
  EXPECT_NEAR(x.Row(0)[1], y.Row(0)[1], 1e-7);
}

TEST_F(SifEmbedderTest, ErrorPaths) {
  SifEmbedder sif(vectors_, options_);
  try {
    sif.LoadWordFrequencies(WriteFile(dir_, "bad.txt", "a 1\nb x\n"));
    ADD_FAILURE() << "no FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "bad.txt").string() + ":2:"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(sif.LoadWordFrequencies(WriteFile(dir_, "neg.txt", "a -1\n")), FormatError);
  EXPECT_THROW(sif.LoadWordFrequencies(WriteFile(dir_, "one.txt", "a\n")), FormatError);
  EXPECT_THROW(sif.LoadWordFrequencies(WriteFile(dir_, "zero.txt", "a 0\n")), FormatError);
  EXPECT_THROW(sif.LoadWordFrequencies(dir_ / "absent.txt"), IoError);

  SifEmbedder fresh(vectors_, options_);
  EXPECT_THROW(fresh.Fit(std::vector<std::string>{}), DataError);
  EXPECT_THROW(fresh.Fit(std::vector<std::string>{"zzz yyy", ""}), DataError);
  EXPECT_FALSE(fresh.fitted());

  fresh.Fit(corpus_);
  EmbedRequest max;
  max.pooling = Pooling::kMax;
  EXPECT_THROW(fresh.Embed(corpus_, max), UsageError);
  EmbedRequest layer2;
  layer2.layers = {2};
  EXPECT_THROW(fresh.Embed(corpus_, layer2), UsageError);

  SifOptions bad = options_;
  bad.a = 0;
  EXPECT_THROW(SifEmbedder(vectors_, bad), UsageError);
  bad.a = NAN;
  EXPECT_THROW(SifEmbedder(vectors_, bad), UsageError);
  EXPECT_EQ(fresh.Name(), "sif");
}

}  // namespace
}  // namespace rwkv_embed::baselines
