// Pre-trained word vectors in text form, held in one contiguous [size, dim] float table.
//
// Formats (detected from the first line):
//   GloVe:    `word v1 ... vD` per line, no header (Stanford's glove.*.txt).
//   word2vec: first line `N D` (two non-negative integers), then `word v1 ... vD` per line
//             (the text output of word2vec / gensim `save_word2vec_format(binary=False)`).
// The word is the text before the first space or tab; values are separated by runs of spaces or
// tabs; trailing whitespace and a trailing '\r' are accepted. Words containing spaces (a handful
// in glove.840B) are therefore not supported and are reported as a ragged line.
// Loading is strict: a wrong number of values, a non-numeric value, NaN/Inf or a value outside the
// float range, an empty word (including a blank line) and a header count that does not match the
// body are FormatErrors naming `file:line`. Duplicate words keep their first vector; the rest are
// counted (duplicates()) so callers can report them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rwkv_embed::baselines {

// Hash for unordered_map<std::string, ...> lookups by string_view without allocating.
struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class WordVectors {
 public:
  enum class Format { kGlove, kWord2Vec };

  // Throws IoError (cannot open/read) or FormatError (see above).
  static WordVectors LoadText(const std::filesystem::path& path);

  // The word's vector (dim() floats), or nullptr when the word is not in the table.
  const float* Find(std::string_view word) const;

  int64_t dim() const { return dim_; }
  int64_t size() const { return static_cast<int64_t>(index_.size()); }
  int64_t duplicates() const { return duplicates_; }  // lines skipped because the word repeated
  Format format() const { return format_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  Format format_ = Format::kGlove;
  int64_t dim_ = 0;
  int64_t duplicates_ = 0;
  std::vector<float> table_;  // [size, dim], row i holds the word mapped to i
  std::unordered_map<std::string, int64_t, TransparentStringHash, std::equal_to<>> index_;
};

std::string_view WordVectorFormatName(WordVectors::Format format);  // "glove" | "word2vec"
// "<file> (<format>, <size> words, dim <dim>[, N duplicate lines skipped])" for Description()s.
std::string DescribeWordVectors(const WordVectors& vectors);

}  // namespace rwkv_embed::baselines
