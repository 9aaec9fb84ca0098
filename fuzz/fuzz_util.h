// Helpers shared by the libFuzzer targets (one executable per *_fuzz.cc, see docs/fuzzing.md).
//
// The parsers read files (they mmap or stream them, and name the file in errors), so each input
// is written to one temporary file per process and parsed from there: the file path is the parse
// entry point the tool really uses.
//
// A target may let the library's own errors (rwkv_embed::Error and subclasses) through: they are
// the clean failure the parsers promise. Anything else escaping (std::bad_alloc, a JSON library
// exception, std::out_of_range), a sanitizer report or a FUZZ_CHECK failure is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"

namespace rwkv_embed::fuzz {

// Aborts (a libFuzzer crash, input saved) when a property of a successful parse does not hold.
#define FUZZ_CHECK(cond, what)                                                                 \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   what);                                                                      \
      std::abort();                                                                            \
    }                                                                                          \
  } while (false)

// A per-process temporary file (in TMPDIR) that holds the current input; removed at exit.
class TempInput {
 public:
  // `suffix` matters to readers that look at the extension (".tsv", ".json").
  explicit TempInput(std::string_view suffix)
      : path_(std::filesystem::temp_directory_path() /
              ("rwkv-embed-fuzz-" + std::to_string(::getpid()) + std::string(suffix))) {}
  TempInput(const TempInput&) = delete;
  TempInput& operator=(const TempInput&) = delete;
  ~TempInput() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }

  const std::filesystem::path& Write(std::string_view bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::fprintf(stderr, "fuzz: cannot write %s\n", path_.c_str());
      std::abort();  // an environment problem, not a finding; stop loudly rather than mislead
    }
    return path_;
  }

 private:
  std::filesystem::path path_;
};

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs `parse`; the library's own errors are the expected outcome for bad input.
template <class F>
void ExpectOnlyLibraryErrors(F&& parse) {
  try {
    parse();
  } catch (const rwkv_embed::Error&) {
  }
}

// The shared data folder: RWKV_EMBED_SHARED, else ../shared beside the checkout.
inline std::filesystem::path SharedDir() {
  const char* env = std::getenv("RWKV_EMBED_SHARED");
  return env != nullptr && *env != '\0' ? std::filesystem::path(env)
                                        : std::filesystem::path(RWKV_EMBED_SHARED_DEFAULT);
}

}  // namespace rwkv_embed::fuzz
