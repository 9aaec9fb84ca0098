// Sentence-pair datasets: MRPC (GLUE and original MSR release), STS-B (original release) and
// generic TSV / CSV / JSONL pair files. Every reader is strict: a malformed row throws a
// FormatError or DataError naming "file:line" (1-based), unless ReadOptions::skip_malformed asks to
// skip such rows, in which case they are counted in PairDataset::skipped_rows (never dropped
// silently).
//
// Error classes: structure (column count, CSV quoting, JSON syntax, header, invalid UTF-8) is a
// FormatError; content (label not a number or out of range, empty sentence, missing named column,
// missing labels) is a DataError.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rwkv_embed {

struct SentencePair {
  std::string id;  // MRPC "<#1 ID>-<#2 ID>", STS-B "genre/file/year/id", generic: id column or line
  std::string sentence1, sentence2;  // verbatim: no trimming, no unquoting in TSV files
  double label = 0;  // finite whenever PairDataset::has_labels; NaN otherwise (never a made-up 0)
};

struct PairDataset {
  std::string task, split;  // e.g. "mrpc", "train-1000"
  std::filesystem::path source;
  std::vector<SentencePair> pairs;
  bool binary = false;       // every label is 0 or 1 (MRPC; generic files with only 0/1 labels)
  bool has_labels = true;    // false only for unlabelled files read with allow_unlabelled
  int64_t skipped_rows = 0;  // malformed rows skipped under skip_malformed
  std::optional<uint64_t> subset_seed;  // set by SubsetPairs / LoadTask("train-N")
};

struct ReadOptions {
  bool skip_malformed = false;    // skip and count malformed rows instead of throwing
  bool allow_unlabelled = false;  // accept files without labels (GLUE MRPC test.tsv)
};

// GLUE MRPC TSV (train.tsv, dev.tsv, test.tsv) and the original MSR files
// (msr_paraphrase_{train,test}.txt): same layout, UTF-8 with an optional BOM, header
// "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String" (GLUE test.tsv: "index" first, no labels).
// Sentences contain unbalanced '"', so rows are split on '\t' only, never CSV-unquoted.
// Labels must be exactly 0 or 1.
PairDataset ReadMrpc(const std::filesystem::path& path, const ReadOptions& options = {});

// STS Benchmark, original release (sts-{train,dev,test}.tsv): no header; columns genre, file,
// year, id, score in [0, 5], sentence1, sentence2; extra trailing columns (source notes on some
// rows) are ignored.
PairDataset ReadStsb(const std::filesystem::path& path, const ReadOptions& options = {});

enum class PairFileFormat { kAuto, kTsv, kCsv, kJsonl };

// How a generic file's labels are read: kAuto = binary when every label is 0 or 1, else graded
// scores; kBinary = every label must be 0 or 1 (a DataError naming the line otherwise); kScore =
// graded scores, never given the binary metrics even where every label happens to be 0 or 1.
enum class PairLabelType { kAuto, kBinary, kScore };

struct PairFileOptions {
  ReadOptions read;
  PairFileFormat format = PairFileFormat::kAuto;  // kAuto: by extension .tsv / .csv / .jsonl
  // Header names (TSV/CSV) or object keys (JSONL). The id column is optional; without it a pair's
  // id is its 1-based line number.
  std::string sentence1_column = "sentence1";
  std::string sentence2_column = "sentence2";
  std::string label_column = "label";
  std::string id_column = "id";
  // Inclusive bounds on labels; a label outside is a DataError.
  std::optional<double> label_min, label_max;
  PairLabelType label_type = PairLabelType::kAuto;
};

// A generic pair file with a header row: TSV split on '\t' with no quoting (like GLUE), CSV with
// RFC 4180 quoting ("" escapes a quote; quoted fields may hold commas and newlines), or JSONL with
// one object per line. Blank lines are malformed rows. Extra columns/keys are ignored. Every JSON
// error (syntax, a number beyond double such as 1e400, a wrong type) is a FormatError or
// DataError naming the line, never a raw nlohmann exception, and skip_malformed skips it.
PairDataset ReadPairFile(const std::filesystem::path& path, const PairFileOptions& options = {});

// Loads a split of a known task from data_dir (the folder holding mrpc/ and stsb/):
//   mrpc: train = mrpc/train.tsv (3668), dev = mrpc/dev.tsv (408),
//         test = mrpc/msr_paraphrase_test.txt (1725, labelled; GLUE's test.tsv has no labels)
//   stsb: train / dev / test = stsb/sts-{train,dev,test}.tsv (5749 / 1500 / 1379)
//   train-<N> (e.g. "train-1000", the study's protocol): SubsetPairs(train, N, seed).
// Unknown task or split: UsageError.
PairDataset LoadTask(std::string_view task, std::string_view split,
                     const std::filesystem::path& data_dir, uint64_t seed = 0);

// n pairs drawn uniformly without replacement with PortableRng(seed) (partial Fisher–Yates), kept
// in their ORIGINAL order in `dataset` (so the subset reads like the source file and a seed's
// subset is identical on every platform). split becomes "<split>-<n>"; subset_seed = seed.
// n > size: UsageError.
PairDataset SubsetPairs(const PairDataset& dataset, size_t n, uint64_t seed);

// The distinct sentences of a dataset in order of first appearance, so each is embedded once.
// If index is non-null, (*index)[i] = positions of pairs[i].sentence1 and .sentence2 in the result.
std::vector<std::string> UniqueSentences(const PairDataset& dataset,
                                         std::vector<std::pair<int, int>>* index);

}  // namespace rwkv_embed
