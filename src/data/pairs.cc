#include "data/pairs.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/random.h"
#include "core/utf8.h"

namespace rwkv_embed {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string ReadFileOrThrow(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string() + ": cannot open for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw IoError(path.string() + ": read failed");
  return std::move(buffer).str();
}

// The text without a leading UTF-8 byte order mark (GLUE's MRPC files carry one).
std::string_view StripBom(std::string_view text) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());
  return text;
}

// Lines split on '\n' with a trailing '\r' removed; a final newline does not start another line.
std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

std::vector<std::string_view> SplitTabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t end = line.find('\t', start);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, end - start));
    start = end + 1;
  }
}

std::string Where(const std::filesystem::path& path, int64_t line) {
  return path.string() + ":" + std::to_string(line);
}

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view TrimAscii(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

// A field quoted for a message: binary bytes escaped, long fields cut (EscapeForMessage).
std::string Quoted(std::string_view s) { return "'" + EscapeForMessage(s, 40) + "'"; }

// kBinary labels must be exactly 0 or 1.
void CheckLabelType(double label, const PairFileOptions& o, const std::string& where) {
  if (o.label_type == PairLabelType::kBinary && label != 0.0 && label != 1.0) {
    std::ostringstream os;
    os << where << ": " << o.label_column << " " << label
       << " is not 0 or 1 (the labels were declared binary)";
    throw DataError(os.str());
  }
}

// A finite number filling the whole (space-trimmed) field, else DataError.
double ParseLabel(std::string_view field, const std::string& where, std::string_view column) {
  const std::string_view t = TrimAscii(field);
  double value = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(value)) {
    throw DataError(where + ": " + std::string(column) + " " + Quoted(field) +
                    " is not a finite number");
  }
  return value;
}

void CheckLabelRange(double label, double lo, double hi, const std::string& where,
                     std::string_view column) {
  if (label < lo || label > hi) {
    std::ostringstream os;
    os << where << ": " << column << " " << label << " is outside [" << lo << ", " << hi << "]";
    throw DataError(os.str());
  }
}

void CheckUtf8(std::string_view text, const std::string& where, std::string_view field) {
  if (const size_t bad = FindInvalidUtf8(text); bad != text.size()) {
    throw FormatError(where + ": invalid UTF-8 in " + std::string(field) + " at byte " +
                      std::to_string(bad));
  }
}

// A sentence must be valid UTF-8 and hold something other than whitespace.
std::string CheckedSentence(std::string_view text, const std::string& where,
                            std::string_view field) {
  CheckUtf8(text, where, field);
  if (TrimAscii(text).empty()) throw DataError(where + ": " + std::string(field) + " is empty");
  return std::string(text);
}

void ThrowIfNoPairs(const PairDataset& d) {
  if (d.pairs.empty()) {
    throw DataError(d.source.string() + ": no sentence pairs" +
                    (d.skipped_rows > 0
                         ? " (" + std::to_string(d.skipped_rows) + " malformed rows skipped)"
                         : std::string()));
  }
}

// Runs parse_row for one row; under skip_malformed a FormatError/DataError counts the row as
// skipped instead of propagating.
template <typename ParseRow>
void ParseRowOrSkip(PairDataset& d, const ReadOptions& options, ParseRow&& parse_row) {
  try {
    d.pairs.push_back(parse_row());
  } catch (const FormatError&) {
    if (!options.skip_malformed) throw;
    ++d.skipped_rows;
  } catch (const DataError&) {
    if (!options.skip_malformed) throw;
    ++d.skipped_rows;
  }
}

bool AllBinary(const std::vector<SentencePair>& pairs) {
  return std::all_of(pairs.begin(), pairs.end(),
                     [](const SentencePair& p) { return p.label == 0.0 || p.label == 1.0; });
}

// ---- CSV (RFC 4180) ---------------------------------------------------------------------------

struct CsvRecord {
  int64_t line = 0;  // 1-based line where the record starts
  std::vector<std::string> fields;
  std::string error;  // non-empty: the record is malformed
};

// Parses one record starting at text[*pos]; advances *pos past its terminator and *line by the
// newlines consumed. On a quoting error, resynchronises at the next newline.
CsvRecord ParseCsvRecord(std::string_view text, size_t* pos, int64_t* line) {
  CsvRecord rec;
  rec.line = *line;
  std::string field;
  size_t i = *pos;
  const auto fail = [&](std::string message) {
    rec.error = std::move(message);
    const size_t nl = text.find('\n', i);
    i = nl == std::string_view::npos ? text.size() : nl + 1;
    if (nl != std::string_view::npos) ++*line;
  };
  while (true) {
    if (i < text.size() && text[i] == '"') {  // quoted field
      const int64_t open_line = *line;
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        if (text[i] == '\n') ++*line;
        field += text[i++];
      }
      if (!closed) {
        rec.error = "quoted field opened on line " + std::to_string(open_line) + " never closes";
        i = text.size();
        break;
      }
      if (i < text.size() && text[i] != ',' && text[i] != '\n' &&
          !(text[i] == '\r' && (i + 1 == text.size() || text[i + 1] == '\n'))) {
        fail("unexpected character after a closing quote");
        break;
      }
    } else {  // unquoted field: up to ',' or end of line; a '"' inside is not allowed
      while (i < text.size() && text[i] != ',' && text[i] != '\n') {
        if (text[i] == '"') break;
        field += text[i++];
      }
      if (i < text.size() && text[i] == '"') {
        fail("'\"' inside an unquoted field (quote the field and double the quote)");
        break;
      }
      if (!field.empty() && field.back() == '\r' && (i == text.size() || text[i] == '\n')) {
        field.pop_back();
      }
    }
    rec.fields.push_back(std::move(field));
    field.clear();
    if (i >= text.size()) break;
    if (text[i] == '\r') ++i;  // CRLF after a quoted field
    if (i >= text.size()) break;
    if (text[i] == '\n') {
      ++i;
      ++*line;
      break;
    }
    ++i;  // ','
  }
  *pos = i;
  return rec;
}

// ---- generic files ----------------------------------------------------------------------------

PairFileFormat InferFormat(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".tsv") return PairFileFormat::kTsv;
  if (ext == ".csv") return PairFileFormat::kCsv;
  if (ext == ".jsonl" || ext == ".ndjson") return PairFileFormat::kJsonl;
  throw UsageError(path.string() + ": cannot infer the pair-file format from extension '" + ext +
                   "' (expected .tsv, .csv or .jsonl; or set the format)");
}

std::string LineId(int64_t line) { return std::to_string(line); }

// Column positions of a TSV/CSV header.
struct Columns {
  size_t count = 0;
  size_t s1 = 0, s2 = 0;
  std::optional<size_t> label, id;
};

Columns FindColumns(const std::vector<std::string>& header, const PairFileOptions& o,
                    const std::string& where) {
  Columns c;
  c.count = header.size();
  const auto find = [&](const std::string& name) -> std::optional<size_t> {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) return std::nullopt;
    return static_cast<size_t>(it - header.begin());
  };
  const auto require = [&](const std::string& name) {
    const auto p = find(name);
    if (!p) {
      std::string names;
      for (const auto& h : header) names += (names.empty() ? "" : ", ") + Quoted(h);
      throw DataError(where + ": no column " + Quoted(name) + " in the header (columns: " + names +
                      ")");
    }
    return *p;
  };
  c.s1 = require(o.sentence1_column);
  c.s2 = require(o.sentence2_column);
  c.label = find(o.label_column);
  if (!c.label && !o.read.allow_unlabelled) require(o.label_column);
  c.id = find(o.id_column);
  return c;
}

SentencePair PairFromFields(const std::vector<std::string>& fields, const Columns& c,
                            const PairFileOptions& o, const std::string& where, int64_t line) {
  if (fields.size() != c.count) {
    throw FormatError(where + ": expected " + std::to_string(c.count) +
                      " columns as in the header," + " found " + std::to_string(fields.size()));
  }
  SentencePair p;
  if (c.id) {
    CheckUtf8(fields[*c.id], where, o.id_column);
    p.id = fields[*c.id];
  } else {
    p.id = LineId(line);
  }
  p.sentence1 = CheckedSentence(fields[c.s1], where, o.sentence1_column);
  p.sentence2 = CheckedSentence(fields[c.s2], where, o.sentence2_column);
  if (c.label) {
    p.label = ParseLabel(fields[*c.label], where, o.label_column);
    CheckLabelRange(p.label, o.label_min.value_or(-INFINITY), o.label_max.value_or(INFINITY), where,
                    o.label_column);
    CheckLabelType(p.label, o, where);
  } else {
    p.label = kNaN;
  }
  return p;
}

void ReadDelimited(std::string_view text, const std::filesystem::path& path,
                   const PairFileOptions& o, bool csv, PairDataset& d) {
  // Records as (line, fields, error) so TSV and CSV share the column logic.
  std::vector<CsvRecord> records;
  if (csv) {
    size_t pos = 0;
    int64_t line = 1;
    while (pos < text.size()) records.push_back(ParseCsvRecord(text, &pos, &line));
  } else {
    const auto lines = SplitLines(text);
    for (size_t i = 0; i < lines.size(); ++i) {
      CsvRecord r;
      r.line = static_cast<int64_t>(i) + 1;
      for (std::string_view f : SplitTabs(lines[i])) r.fields.emplace_back(f);
      records.push_back(std::move(r));
    }
  }
  if (records.empty()) throw DataError(path.string() + ": empty file, expected a header row");
  if (!records[0].error.empty()) {
    throw FormatError(Where(path, records[0].line) + ": header: " + records[0].error);
  }
  for (const auto& h : records[0].fields) CheckUtf8(h, Where(path, 1), "header");
  const Columns columns = FindColumns(records[0].fields, o, Where(path, 1));
  d.has_labels = columns.label.has_value();
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    const std::string where = Where(path, rec.line);
    ParseRowOrSkip(d, o.read, [&] {
      if (!rec.error.empty()) throw FormatError(where + ": " + rec.error);
      return PairFromFields(rec.fields, columns, o, where, rec.line);
    });
  }
}

// nlohmann::json's message made safe to quote: its "last read" fragment may hold raw bytes.
std::string JsonMessage(const nlohmann::json::exception& e) { return EscapeForMessage(e.what()); }

SentencePair PairFromJson(std::string_view line, const PairFileOptions& o, const std::string& where,
                          int64_t line_number, std::optional<bool>* labelled) {
  CheckUtf8(line, where, "line");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::out_of_range& e) {  // 406: a number beyond double, e.g. 1e400
    throw FormatError(where + ": number out of range: " + JsonMessage(e));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": invalid JSON: " + JsonMessage(e));
  }
  if (!j.is_object()) throw FormatError(where + ": expected a JSON object");
  const auto text = [&](const std::string& key) {
    const auto it = j.find(key);
    if (it == j.end()) throw DataError(where + ": no key " + Quoted(key));
    if (!it->is_string()) throw DataError(where + ": " + Quoted(key) + " is not a string");
    return CheckedSentence(it->get_ref<const std::string&>(), where, key);
  };
  SentencePair p;
  p.sentence1 = text(o.sentence1_column);
  p.sentence2 = text(o.sentence2_column);
  if (const auto it = j.find(o.id_column); it != j.end()) {
    p.id = it->is_string() ? it->get<std::string>() : it->dump();
  } else {
    p.id = LineId(line_number);
  }
  const auto label = j.find(o.label_column);
  // The first well-formed row decides whether the file is labelled (only with allow_unlabelled);
  // every later row must agree.
  if (!labelled->has_value()) *labelled = label != j.end() || !o.read.allow_unlabelled;
  if (label == j.end()) {
    if (!**labelled) {
      p.label = kNaN;
      return p;
    }
    throw DataError(where + ": no key " + Quoted(o.label_column));
  }
  if (!**labelled) {
    throw DataError(where + ": " + Quoted(o.label_column) + " present in some rows only");
  }
  if (!label->is_number()) {
    throw DataError(where + ": " + Quoted(o.label_column) + " is " +
                    Quoted(label->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) +
                    ", not a number");
  }
  p.label = label->get<double>();
  if (!std::isfinite(p.label)) {
    throw DataError(where + ": " + Quoted(o.label_column) + " is not finite");
  }
  CheckLabelRange(p.label, o.label_min.value_or(-INFINITY), o.label_max.value_or(INFINITY), where,
                  o.label_column);
  CheckLabelType(p.label, o, where);
  return p;
}

void ReadJsonl(std::string_view text, const std::filesystem::path& path, const PairFileOptions& o,
               PairDataset& d) {
  const auto lines = SplitLines(text);
  std::optional<bool> labelled;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t line = static_cast<int64_t>(i) + 1;
    const std::string where = Where(path, line);
    ParseRowOrSkip(d, o.read, [&] { return PairFromJson(lines[i], o, where, line, &labelled); });
  }
  d.has_labels = labelled.value_or(true);
}

}  // namespace

PairDataset ReadMrpc(const std::filesystem::path& path, const ReadOptions& options) {
  const std::string content = ReadFileOrThrow(path);
  const auto lines = SplitLines(StripBom(content));
  PairDataset d;
  d.task = "mrpc";
  d.split = path.stem().string();
  d.source = path;
  d.binary = true;
  if (lines.empty()) throw DataError(path.string() + ": empty file, expected the MRPC header");
  constexpr std::string_view kLabelled = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String";
  constexpr std::string_view kUnlabelled = "index\t#1 ID\t#2 ID\t#1 String\t#2 String";
  if (lines[0] == kUnlabelled) {
    if (!options.allow_unlabelled) {
      throw DataError(path.string() +
                      ": has no labels (GLUE's MRPC test split); evaluate on "
                      "msr_paraphrase_test.txt, or pass allow_unlabelled");
    }
    d.has_labels = false;
  } else if (lines[0] != kLabelled) {
    throw FormatError(Where(path, 1) + ": unexpected header " + Quoted(lines[0]) +
                      ", expected 'Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String'");
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string where = Where(path, static_cast<int64_t>(i) + 1);
    ParseRowOrSkip(d, options, [&] {
      const auto f = SplitTabs(lines[i]);
      if (f.size() != 5) {
        throw FormatError(where + ": expected 5 tab-separated columns, found " +
                          std::to_string(f.size()));
      }
      SentencePair p;
      for (int k : {1, 2}) {
        CheckUtf8(f[k], where, k == 1 ? "#1 ID" : "#2 ID");
        if (TrimAscii(f[k]).empty()) throw DataError(where + ": empty pair id");
      }
      p.id = std::string(f[1]) + "-" + std::string(f[2]);
      p.sentence1 = CheckedSentence(f[3], where, "#1 String");
      p.sentence2 = CheckedSentence(f[4], where, "#2 String");
      if (d.has_labels) {
        p.label = ParseLabel(f[0], where, "Quality");
        if (p.label != 0.0 && p.label != 1.0) {
          throw DataError(where + ": Quality " + Quoted(f[0]) + " is not 0 or 1");
        }
      } else {
        p.label = kNaN;
      }
      return p;
    });
  }
  ThrowIfNoPairs(d);
  return d;
}

PairDataset ReadStsb(const std::filesystem::path& path, const ReadOptions& options) {
  const std::string content = ReadFileOrThrow(path);
  const auto lines = SplitLines(StripBom(content));
  PairDataset d;
  d.task = "stsb";
  d.split = path.stem().string();
  d.source = path;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = Where(path, static_cast<int64_t>(i) + 1);
    ParseRowOrSkip(d, options, [&] {
      const auto f = SplitTabs(lines[i]);
      if (f.size() < 7) {
        throw FormatError(where +
                          ": expected at least 7 tab-separated columns (genre, file, "
                          "year, id, score, sentence1, sentence2), found " +
                          std::to_string(f.size()));
      }
      SentencePair p;
      for (int k = 0; k < 4; ++k) CheckUtf8(f[k], where, "id columns");
      p.id = std::string(f[0]) + "/" + std::string(f[1]) + "/" + std::string(f[2]) + "/" +
             std::string(f[3]);
      p.label = ParseLabel(f[4], where, "score");
      CheckLabelRange(p.label, 0.0, 5.0, where, "score");
      p.sentence1 = CheckedSentence(f[5], where, "sentence1");
      p.sentence2 = CheckedSentence(f[6], where, "sentence2");
      return p;
    });
  }
  ThrowIfNoPairs(d);
  return d;
}

PairDataset ReadPairFile(const std::filesystem::path& path, const PairFileOptions& options) {
  const PairFileFormat format =
      options.format == PairFileFormat::kAuto ? InferFormat(path) : options.format;
  const std::string content = ReadFileOrThrow(path);
  const std::string_view text = StripBom(content);
  PairDataset d;
  d.task = path.stem().string();
  d.split = path.stem().string();
  d.source = path;
  if (format == PairFileFormat::kJsonl) {
    ReadJsonl(text, path, options, d);
  } else {
    ReadDelimited(text, path, options, format == PairFileFormat::kCsv, d);
  }
  ThrowIfNoPairs(d);
  d.binary = d.has_labels && options.label_type != PairLabelType::kScore && AllBinary(d.pairs);
  return d;
}

PairDataset SubsetPairs(const PairDataset& dataset, size_t n, uint64_t seed) {
  if (n == 0 || n > dataset.pairs.size()) {
    throw UsageError("cannot draw a subset of " + std::to_string(n) + " pairs from " +
                     dataset.source.string() + " (" + std::to_string(dataset.pairs.size()) +
                     " pairs)");
  }
  PortableRng rng(seed);
  std::vector<size_t> chosen = rng.SampleWithoutReplacement(dataset.pairs.size(), n);
  std::sort(chosen.begin(), chosen.end());  // keep the source order (documented in the header)
  PairDataset subset;
  subset.task = dataset.task;
  subset.split = dataset.split + "-" + std::to_string(n);
  subset.source = dataset.source;
  subset.binary = dataset.binary;
  subset.has_labels = dataset.has_labels;
  subset.skipped_rows = dataset.skipped_rows;
  subset.subset_seed = seed;
  subset.pairs.reserve(n);
  for (size_t i : chosen) subset.pairs.push_back(dataset.pairs[i]);
  return subset;
}

PairDataset LoadTask(std::string_view task, std::string_view split,
                     const std::filesystem::path& data_dir, uint64_t seed) {
  // "train-<N>": a seeded subset of train.
  std::string_view base = split;
  size_t subset_size = 0;
  if (split.starts_with("train-")) {
    const std::string_view digits = split.substr(6);
    const auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), subset_size);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        subset_size == 0) {
      throw UsageError("invalid split '" + std::string(split) + "' (expected train-<N>, N > 0)");
    }
    base = "train";
  }
  PairDataset d;
  if (task == "mrpc") {
    if (base == "train") {
      d = ReadMrpc(data_dir / "mrpc" / "train.tsv");
    } else if (base == "dev") {
      d = ReadMrpc(data_dir / "mrpc" / "dev.tsv");
    } else if (base == "test") {
      d = ReadMrpc(data_dir / "mrpc" / "msr_paraphrase_test.txt");
    } else {
      throw UsageError("unknown split '" + std::string(split) +
                       "' for mrpc (expected train, train-<N>, dev or test)");
    }
  } else if (task == "stsb") {
    if (base == "train" || base == "dev" || base == "test") {
      d = ReadStsb(data_dir / "stsb" / ("sts-" + std::string(base) + ".tsv"));
    } else {
      throw UsageError("unknown split '" + std::string(split) +
                       "' for stsb (expected train, train-<N>, dev or test)");
    }
  } else {
    throw UsageError("unknown task '" + std::string(task) + "' (expected mrpc or stsb)");
  }
  d.split = std::string(base);
  if (subset_size > 0) d = SubsetPairs(d, subset_size, seed);
  return d;
}

std::vector<std::string> UniqueSentences(const PairDataset& dataset,
                                         std::vector<std::pair<int, int>>* index) {
  std::vector<std::string> unique;
  std::unordered_map<std::string_view, int> position;  // views into dataset, which outlives this
  const auto intern = [&](const std::string& s) {
    const auto [it, inserted] = position.try_emplace(s, static_cast<int>(unique.size()));
    if (inserted) unique.push_back(s);
    return it->second;
  };
  if (index != nullptr) index->clear();
  for (const SentencePair& p : dataset.pairs) {
    const int a = intern(p.sentence1);
    const int b = intern(p.sentence2);
    if (index != nullptr) index->emplace_back(a, b);
  }
  return unique;
}

}  // namespace rwkv_embed
