// Word tokenizers for word-vector baselines (GloVe averages, SIF). Both are hand-written byte
// scanners over UTF-8 text (std::regex is far too slow for corpus-sized input).
//
// kWhitespace: Python's `str.split()` (no argument) restricted to ASCII whitespace, i.e. splits on
//   runs of ' ', \t, \n, \v, \f, \r and the ASCII separators \x1c-\x1f (all of which Python's
//   str.isspace() accepts) and drops empty pieces. Unicode whitespace (U+00A0 no-break space,
//   U+2009 thin space, U+3000, ...) is NOT a separator here and stays inside a token, whereas
//   Python's str.split() would split on it. This is what the study's "simple whitespace
//   tokenization" means for ASCII text.
// kRegex: the matches of `\w+|[^\w\s]`, i.e. runs of word characters, and every other
//   non-whitespace character as a token of its own. Word characters are ASCII [A-Za-z0-9_] plus
//   every byte >= 0x80, so a non-ASCII UTF-8 sequence is always part of a word and never split
//   mid-character. Unlike Python's Unicode `re`, non-ASCII punctuation (e.g. U+2014 em dash, curly
//   quotes) is therefore glued to adjacent words: "a—b" is one token. \s is the same ASCII set
//   as for kWhitespace.
//
// Lower-casing (optional) maps ASCII A-Z to a-z only; GloVe 6B is lower-cased ASCII-wise, and
// non-ASCII letters ("É") are left as they are.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rwkv_embed::baselines {

enum class WordTokenizer { kWhitespace, kRegex };

// "whitespace" | "regex"; throws UsageError naming the valid names.
WordTokenizer ParseWordTokenizer(std::string_view name);
std::string_view WordTokenizerName(WordTokenizer tokenizer);

// Replaces *out with the tokens of `text` (reusing its capacity).
void TokenizeWords(std::string_view text, WordTokenizer tokenizer, bool lowercase,
                   std::vector<std::string>* out);
std::vector<std::string> TokenizeWords(std::string_view text, WordTokenizer tokenizer,
                                       bool lowercase);

// ASCII lower-casing in place (bytes >= 0x80 untouched).
void AsciiLowercase(std::string* s);

}  // namespace rwkv_embed::baselines
