// Small helpers shared by the CLI subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <istream>
#include <memory>
#include <string>
#include <vector>

namespace rwkv_embed::cli {

// --threads N (default: every core); applies it to OpenMP.
void AddThreadsOption(CLI::App* sub, int* threads);
void ApplyThreads(int threads);

// --gemm-path NAME|auto (default: RWKV_EMBED_GEMM_PATH, else auto = measured per shape);
// ApplyGemmPath forces it for the process (UsageError for an unknown or unavailable path).
void AddGemmPathOption(CLI::App* sub, std::string* path);
void ApplyGemmPath(const std::string& path);

// "-" is standard input. Throws IoError naming the path.
std::unique_ptr<std::istream> OpenInput(const std::string& path);

// One sentence per line: strips "\n" and a "\r" before it; checks UTF-8 and rejects empty lines,
// naming the 1-based line number and the source.
std::vector<std::string> ReadSentenceLines(std::istream& in, const std::string& source);

// Whether progress lines should go to stderr (a terminal, or forced).
bool ProgressWanted(bool forced);

}  // namespace rwkv_embed::cli
