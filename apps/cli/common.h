// Small helpers shared by the CLI subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "model/ablation.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::cli {

// Validators for integer options. CLI11's own conversion (strtoll/strtoull, base 0) saturates on
// overflow (`99999999999999999999` became INT64_MAX), wraps "-1" for unsigned options and reads
// "010" as octal; these accept only base-10 digits that fit, within [lo, hi], and name the range.
CLI::Validator IntegerIn(int64_t lo, int64_t hi);
CLI::Validator UnsignedInteger();

// Sane upper bound of count-like options (tokens, sentences, pairs, resamples): far beyond any
// real use, small enough that sizes derived from it cannot overflow.
inline constexpr int64_t kMaxCount = int64_t{1} << 30;

// --threads N (default: every core); applies it to OpenMP.
void AddThreadsOption(CLI::App* sub, int* threads);
void ApplyThreads(int threads);

// --gemm-path NAME|auto (default: RWKV_EMBED_GEMM_PATH, else auto = measured per shape);
// ApplyGemmPath forces it for the process (UsageError for an unknown or unavailable path).
void AddGemmPathOption(CLI::App* sub, std::string* path);
void ApplyGemmPath(const std::string& path);

// The values of --precision (f32|bf16) and --tokenizer (world|bytes); UsageError naming the flag
// and the value given.
kernels::MatMulPrecision ParsePrecisionFlag(const std::string& value);
TokenizerKind ParseTokenizerFlag(const std::string& value);

// --ablate SPEC, repeatable (model/ablation.h), and its parse.
void AddAblateOption(CLI::App* sub, std::vector<std::string>* specs);
std::vector<AblationSpec> ParseAblations(const std::vector<std::string>& specs);

// "-" is standard input. Throws IoError naming the path.
std::unique_ptr<std::istream> OpenInput(const std::string& path);

// One sentence per line: strips "\n" and a "\r" before it and a UTF-8 byte order mark before the
// first line (as the dataset readers do); checks UTF-8 and rejects empty lines, naming the 1-based
// line number and the source. `first_line` numbers a piece of a file that starts at that line (a
// shard of the MPI embed; the byte order mark is only looked for on line 1).
std::vector<std::string> ReadSentenceLines(std::istream& in, const std::string& source,
                                           int64_t first_line = 1);

// Whether progress lines should go to stderr (a terminal, or forced).
bool ProgressWanted(bool forced);

}  // namespace rwkv_embed::cli
