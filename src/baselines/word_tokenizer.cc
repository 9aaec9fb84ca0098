#include "baselines/word_tokenizer.h"

#include "core/error.h"

namespace rwkv_embed::baselines {
namespace {

// Python's str.isspace() restricted to ASCII: \t \n \v \f \r, \x1c-\x1f and ' '.
constexpr bool IsSpace(unsigned char c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20);
}

// ASCII \w plus every non-ASCII byte (see header: UTF-8 sequences count as word characters).
constexpr bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c >= 0x80;
}

void Emit(std::string_view piece, bool lowercase, std::vector<std::string>* out) {
  std::string& token = out->emplace_back(piece);
  if (lowercase) AsciiLowercase(&token);
}

}  // namespace

WordTokenizer ParseWordTokenizer(std::string_view name) {
  if (name == "whitespace") return WordTokenizer::kWhitespace;
  if (name == "regex") return WordTokenizer::kRegex;
  throw UsageError("unknown word tokenizer '" + std::string(name) + "' (valid: whitespace|regex)");
}

std::string_view WordTokenizerName(WordTokenizer tokenizer) {
  return tokenizer == WordTokenizer::kRegex ? "regex" : "whitespace";
}

void AsciiLowercase(std::string* s) {
  for (char& c : *s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

void TokenizeWords(std::string_view text, WordTokenizer tokenizer, bool lowercase,
                   std::vector<std::string>* out) {
  out->clear();
  const size_t n = text.size();
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  size_t i = 0;
  while (i < n) {
    if (IsSpace(byte(i))) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    if (tokenizer == WordTokenizer::kWhitespace) {
      while (end < n && !IsSpace(byte(end))) ++end;
    } else if (IsWordByte(byte(i))) {
      while (end < n && IsWordByte(byte(end))) ++end;
    }
    // else: kRegex, one ASCII punctuation/symbol character is a token by itself ([^\w\s]).
    Emit(text.substr(i, end - i), lowercase, out);
    i = end;
  }
}

std::vector<std::string> TokenizeWords(std::string_view text, WordTokenizer tokenizer,
                                       bool lowercase) {
  std::vector<std::string> tokens;
  TokenizeWords(text, tokenizer, lowercase, &tokens);
  return tokens;
}

}  // namespace rwkv_embed::baselines
