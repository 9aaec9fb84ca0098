#include "common.h"

#include <omp.h>
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "core/error.h"
#include "core/utf8.h"
#include "kernels/gemm.h"

namespace rwkv_embed::cli {

void AddThreadsOption(CLI::App* sub, int* threads) {
  sub->add_option("--threads", *threads, "worker threads (default: all cores)")
      ->check(CLI::Range(1, 4096));
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

std::unique_ptr<std::istream> OpenInput(const std::string& path) {
  if (path == "-") {
    return std::make_unique<std::istream>(std::cin.rdbuf());
  }
  auto in = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*in) throw IoError("cannot open input " + path);
  return in;
}

std::vector<std::string> ReadSentenceLines(std::istream& in, const std::string& source) {
  std::vector<std::string> lines;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = source + " line " + std::to_string(number);
    ValidateUtf8(line, where);
    if (line.empty()) throw DataError(where + " is empty: give one sentence per line");
    lines.push_back(std::move(line));
  }
  if (in.bad()) throw IoError("error reading " + source);
  return lines;
}

bool ProgressWanted(bool forced) { return forced || isatty(STDERR_FILENO) != 0; }

}  // namespace rwkv_embed::cli
