#include "common.h"

#include <omp.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "core/utf8.h"
#include "kernels/gemm.h"

namespace rwkv_embed::cli {

namespace {

// Whether `text` is exactly a base-10 integer that fits in T (no sign for unsigned T).
template <typename T>
bool ParseInteger(const std::string& text, T* value) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return !text.empty() && ec == std::errc() && ptr == end;
}

}  // namespace

CLI::Validator IntegerIn(int64_t lo, int64_t hi) {
  const std::string range =
      "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        int64_t v = 0;
        if (ParseInteger(text, &v) && v >= lo && v <= hi) return "";
        return "'" + EscapeForMessage(text, 40) + "' is not " + range;
      },
      range.substr(3));
}

CLI::Validator UnsignedInteger() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t v = 0;
        if (ParseInteger(text, &v)) return "";
        return "'" + EscapeForMessage(text, 40) + "' is not an integer in [0, 2^64-1]";
      },
      "integer in [0, 2^64-1]");
}

void AddThreadsOption(CLI::App* sub, int* threads) {
  sub->add_option("--threads", *threads, "worker threads (default: all cores)")
      ->check(IntegerIn(1, 4096));
}

void ApplyThreads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

void AddGemmPathOption(CLI::App* sub, std::string* path) {
  sub->add_option("--gemm-path", *path,
                  "GEMM kernel: auto (fastest measured here) | portable | avx2-f32 | avx512-f32 | "
                  "avx512-bf16 | amx-bf16 | onednn-bf16 | onednn-f32 (default: "
                  "$RWKV_EMBED_GEMM_PATH, else auto)");
}

void ApplyGemmPath(const std::string& path) {
  if (!path.empty()) kernels::ForceGemmPath(kernels::ParseGemmPath(path));
}

void AddAblateOption(CLI::App* sub, std::vector<std::string>* specs) {
  sub->add_option("--ablate", *specs,
                  "run the RWKV model ablated (repeatable): SWITCH:BLOCKS with SWITCH skip-tmix | "
                  "skip-cmix | freeze-decay | zero-bonus | decay-scale=S and BLOCKS 1-based, "
                  "e.g. skip-tmix:3, skip-cmix:1-4, freeze-decay:all, decay-scale=2:5-8")
      ->take_all()
      ->allow_extra_args(false)
      ->type_name("SPEC");
}

std::vector<AblationSpec> ParseAblations(const std::vector<std::string>& specs) {
  std::vector<AblationSpec> out;
  for (const std::string& s : specs) out.push_back(ParseAblationSpec(s));
  return out;
}

std::unique_ptr<std::istream> OpenInput(const std::string& path) {
  if (path == "-") {
    return std::make_unique<std::istream>(std::cin.rdbuf());
  }
  auto in = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*in) throw IoError("cannot open input " + path);
  return in;
}

std::vector<std::string> ReadSentenceLines(std::istream& in, const std::string& source,
                                           int64_t first_line) {
  std::vector<std::string> lines;
  std::string line;
  int64_t number = first_line - 1;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // UTF-8 BOM
    const std::string where = source + " line " + std::to_string(number);
    ValidateUtf8(line, where);
    if (line.empty()) throw DataError(where + " is empty: give one sentence per line");
    lines.push_back(std::move(line));
  }
  if (in.bad()) throw IoError("error reading " + source);
  return lines;
}

bool ProgressWanted(bool forced) { return forced || isatty(STDERR_FILENO) != 0; }

kernels::MatMulPrecision ParsePrecisionFlag(const std::string& value) {
  if (value != "f32" && value != "bf16") {
    throw UsageError("--precision must be f32 or bf16, got '" + value + "'");
  }
  return kernels::ParseMatMulPrecision(value);
}

TokenizerKind ParseTokenizerFlag(const std::string& value) {
  if (value != "world" && value != "bytes") {
    throw UsageError("--tokenizer must be world or bytes, got '" + value + "'");
  }
  return ParseTokenizerKind(value);
}

}  // namespace rwkv_embed::cli
