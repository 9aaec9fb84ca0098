#include "baselines/word_vectors.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>

#include "core/error.h"

namespace rwkv_embed::baselines {
namespace {

constexpr bool IsSeparator(char c) { return c == ' ' || c == '\t'; }

std::string Quote(std::string_view s) {
  constexpr size_t kMax = 40;
  if (s.size() <= kMax) return "'" + std::string(s) + "'";
  return "'" + std::string(s.substr(0, kMax)) + "...'";
}

// Splits `line` at runs of separators. Cheap enough to run once for the first line only.
std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t p = 0;
  while (p < line.size()) {
    while (p < line.size() && IsSeparator(line[p])) ++p;
    if (p == line.size()) break;
    size_t end = p;
    while (end < line.size() && !IsSeparator(line[end])) ++end;
    fields.push_back(line.substr(p, end - p));
    p = end;
  }
  return fields;
}

// Clinger's fast path for the plain decimals that vector files are made of ("-0.038194",
// "1e-05"): with a mantissa m <= 2^24 and |e| <= 10, both m and 10^|e| are exact floats, so one
// IEEE multiplication or division gives the correctly rounded value of m * 10^e, bit-identical to
// strtof / from_chars. Returns where parsing stopped, or nullptr when the text is not a plain
// decimal in that range (the caller then takes the general path).
const char* ParsePlainDecimal(const char* p, const char* end, float* out) {
  constexpr float kPow10[] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
  constexpr uint32_t kMaxMantissa = uint32_t{1} << 24;
  const bool negative = p < end && *p == '-';
  if (negative) ++p;
  uint32_t mantissa = 0;
  int exponent = 0;
  int digits = 0;
  for (; p < end && *p >= '0' && *p <= '9'; ++p, ++digits) {
    mantissa = mantissa * 10 + static_cast<uint32_t>(*p - '0');
    if (mantissa > kMaxMantissa) return nullptr;
  }
  if (p < end && *p == '.') {
    for (++p; p < end && *p >= '0' && *p <= '9'; ++p, ++digits) {
      mantissa = mantissa * 10 + static_cast<uint32_t>(*p - '0');
      if (mantissa > kMaxMantissa) return nullptr;
      --exponent;
    }
  }
  if (digits == 0) return nullptr;
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    const bool negative_exponent = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+')) ++p;
    if (p == end || *p < '0' || *p > '9') return nullptr;
    int e = 0;
    for (; p < end && *p >= '0' && *p <= '9'; ++p) {
      e = e * 10 + (*p - '0');
      if (e > 100) return nullptr;
    }
    exponent += negative_exponent ? -e : e;
  }
  if (exponent < -10 || exponent > 10) return nullptr;
  float value = static_cast<float>(mantissa);
  value = exponent < 0 ? value / kPow10[-exponent] : value * kPow10[exponent];
  *out = negative ? -value : value;
  return p;
}

// The general path: std::from_chars into float, finite values only. Underflow to a subnormal or
// zero is accepted (strtof decides it); overflow and NaN/Inf throw make_error(what(...)).
template <typename What, typename MakeError>
bool ParseFloatChecked(std::string_view field, float* out, const What& what,
                       const MakeError& make_error) {
  // from_chars rejects a leading '+', which other writers (and Python's float()) accept.
  if (field.size() > 1 && field[0] == '+' && field[1] != '-') field.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), *out);
  if (ec == std::errc::result_out_of_range && ptr == field.data() + field.size()) {
    const std::string copy(field);
    *out = std::strtof(copy.c_str(), nullptr);  // +-HUGE_VALF on overflow, tiny on underflow
    if (!std::isfinite(*out)) throw make_error(what("out of float range"));
    return true;
  }
  if (ec != std::errc() || ptr != field.data() + field.size()) return false;
  if (!std::isfinite(*out)) throw make_error(what("not finite"));
  return true;
}

bool ParseCount(std::string_view s, int64_t* out) {
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && *out >= 0;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

std::string_view WordVectorFormatName(WordVectors::Format format) {
  return format == WordVectors::Format::kWord2Vec ? "word2vec" : "glove";
}

std::string DescribeWordVectors(const WordVectors& vectors) {
  std::string s = vectors.path().string() + " (" +
                  std::string(WordVectorFormatName(vectors.format())) + ", " +
                  std::to_string(vectors.size()) + " words, dim " + std::to_string(vectors.dim());
  if (vectors.duplicates() > 0) {
    s += ", " + std::to_string(vectors.duplicates()) + " duplicate lines skipped";
  }
  return s + ")";
}

WordVectors WordVectors::LoadText(const std::filesystem::path& path) {
  WordVectors wv;
  wv.path_ = path;
  const std::string file = path.string();
  const auto fail = [&](int64_t line_no, const std::string& what) -> FormatError {
    return FormatError(file + ":" + std::to_string(line_no) + ": " + what);
  };

  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(file.c_str(), "rb"));
  if (!f) throw IoError("cannot open word-vector file " + file);
  std::error_code size_ec;
  const auto file_size = std::filesystem::file_size(path, size_ec);

  int64_t line_no = 0;
  int64_t declared_rows = -1;  // word2vec header N
  int64_t body_rows = 0;       // vector lines read, duplicates included

  // One vector line: `word v1 ... vD`. dim_ is known here.
  const auto parse_vector_line = [&](std::string_view line) {
    size_t p = 0;
    while (p < line.size() && !IsSeparator(line[p])) ++p;
    const std::string_view word = line.substr(0, p);
    if (word.empty()) {
      throw fail(line_no, line.empty() ? "blank line (expected `word v1 ... v" +
                                             std::to_string(wv.dim_) + "`)"
                                       : "empty word (line starts with whitespace)");
    }
    ++body_rows;
    const size_t base = wv.table_.size();
    wv.table_.resize(base + wv.dim_);
    float* row = wv.table_.data() + base;
    int64_t count = 0;
    while (true) {
      while (p < line.size() && IsSeparator(line[p])) ++p;
      if (p == line.size()) break;
      if (count < wv.dim_) {
        const char* const begin = line.data() + p;
        const char* const line_end = line.data() + line.size();
        const char* const stop = ParsePlainDecimal(begin, line_end, &row[count]);
        if (stop != nullptr && (stop == line_end || IsSeparator(*stop))) {
          p = static_cast<size_t>(stop - line.data());
          ++count;
          continue;
        }
        // Slow path: anything the fast path does not take (long mantissas, big exponents, '+',
        // and every malformed value, which it diagnoses).
        size_t end = p;
        while (end < line.size() && !IsSeparator(line[end])) ++end;
        const std::string_view field = line.substr(p, end - p);
        const auto what = [&](const char* problem) {
          return "value " + std::to_string(count + 1) + " of word " + Quote(word) + " is " +
                 problem + ": " + Quote(field);
        };
        float value = 0;
        if (!ParseFloatChecked(field, &value, what,
                               [&](const std::string& m) { return fail(line_no, m); })) {
          throw fail(line_no, what("not a number"));
        }
        row[count] = value;
        ++count;
        p = end;
        continue;
      }
      while (p < line.size() && !IsSeparator(line[p])) ++p;  // count surplus values
      ++count;
    }
    if (count != wv.dim_) {
      throw fail(line_no, "word " + Quote(word) + " has " + std::to_string(count) +
                              " values, expected " + std::to_string(wv.dim_) +
                              " (ragged dimensions)");
    }
    const auto [it, inserted] =
        wv.index_.try_emplace(std::string(word), static_cast<int64_t>(base) / wv.dim_);
    if (!inserted) {  // first occurrence wins
      wv.table_.resize(base);
      ++wv.duplicates_;
    }
  };

  // The first line decides the format: `N D` is a word2vec header, anything else a GloVe row
  // whose value count is the dimension.
  const auto parse_first_line = [&](std::string_view line) {
    const auto fields = SplitFields(line);
    int64_t n = 0, d = 0;
    if (fields.size() == 2 && !IsSeparator(line[0]) && ParseCount(fields[0], &n) &&
        ParseCount(fields[1], &d)) {
      if (d == 0) throw fail(line_no, "word2vec header `" + std::string(line) + "` has dim 0");
      wv.format_ = Format::kWord2Vec;
      wv.dim_ = d;
      declared_rows = n;
      // Trust the header only as far as the file size allows (each value takes >= 2 bytes), so a
      // corrupt header cannot trigger a huge allocation.
      const int64_t rows = size_ec ? 0 : std::min<int64_t>(n, file_size / (2 * d + 2) + 1);
      wv.table_.reserve(static_cast<size_t>(rows * d));
      wv.index_.reserve(static_cast<size_t>(rows));
      return;
    }
    wv.format_ = Format::kGlove;
    if (fields.empty()) throw fail(line_no, "blank first line (expected `word v1 ... vD`)");
    wv.dim_ = fields.empty() ? 0 : static_cast<int64_t>(fields.size()) - 1;
    if (IsSeparator(line[0])) throw fail(line_no, "empty word (line starts with whitespace)");
    if (wv.dim_ == 0) throw fail(line_no, "word " + Quote(fields[0]) + " has no values");
    if (wv.dim_ > 0 && !size_ec) {
      // Rows in GloVe files have similar lengths; over-reserve a little to avoid regrowth.
      const auto rows = static_cast<size_t>(file_size / (line.size() + 1) * 11 / 10 + 16);
      wv.table_.reserve(rows * wv.dim_);
      wv.index_.reserve(rows);
    }
    parse_vector_line(line);
  };

  const auto handle_line = [&](std::string_view line) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1) {
      // A UTF-8 byte-order mark is not part of the first word.
      if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
      parse_first_line(line);
    } else {
      parse_vector_line(line);
    }
  };

  // Read in large blocks and parse complete lines in place; only a partial last line is carried.
  constexpr size_t kBlock = size_t{1} << 22;
  std::string buffer;
  size_t carried = 0;
  while (true) {
    buffer.resize(carried + kBlock);
    const size_t got = std::fread(buffer.data() + carried, 1, kBlock, f.get());
    if (got < kBlock && std::ferror(f.get()))
      throw IoError("error reading word-vector file " + file);
    const size_t filled = carried + got;
    const std::string_view data(buffer.data(), filled);
    size_t start = 0;
    while (true) {
      const size_t nl = data.find('\n', start);
      if (nl == std::string_view::npos) break;
      handle_line(data.substr(start, nl - start));
      start = nl + 1;
    }
    if (got == 0) {
      if (start < filled) handle_line(data.substr(start));  // last line without '\n'
      break;
    }
    buffer.erase(0, start);
    carried = filled - start;
  }

  if (line_no == 0) throw fail(1, "empty file, no word vectors");
  if (declared_rows >= 0 && declared_rows != body_rows) {
    throw fail(1, "word2vec header declares " + std::to_string(declared_rows) +
                      " vectors but the file has " + std::to_string(body_rows));
  }
  if (wv.index_.empty()) throw fail(1, "no word vectors after the header");
  // Give back a badly over-estimated reservation only: shrinking copies the whole table, which
  // would double the peak memory of a large load for a few percent of slack.
  if (wv.table_.capacity() > wv.table_.size() / 4 * 5 + 1024) wv.table_.shrink_to_fit();
  return wv;
}

const float* WordVectors::Find(std::string_view word) const {
  const auto it = index_.find(word);
  return it == index_.end() ? nullptr : table_.data() + it->second * dim_;
}

}  // namespace rwkv_embed::baselines
