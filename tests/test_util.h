// Helpers shared by the test executables: locating ../shared, tolerance checks, the CLI binary.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace rwkv_embed::testing {

// The shared data folder: $RWKV_EMBED_SHARED, else ../shared beside the checkout.
std::filesystem::path SharedDir();

// SharedDir()/relative, or an empty path when that file is genuinely absent.
std::filesystem::path SharedFile(const std::string& relative);

// Path of the built rwkv-embed CLI (for end-to-end tests).
std::filesystem::path CliPath();

// `s` single-quoted for the shell.
std::string ShellQuote(const std::string& s);
// The whole file as bytes ("" when it cannot be read).
std::string ReadFile(const std::filesystem::path& p);

// `command` through the shell with stdout discarded and stderr captured (in dir/stderr.txt).
struct ShellRun {
  int exit_code = -1;
  std::string err;
};
ShellRun RunShell(const std::string& command, const std::filesystem::path& dir);

// Runs the CLI with `args` (shell-quoted here), feeding `stdin_text`; captures both streams.
struct CliRun {
  int exit_code = -1;
  std::string out, err;
};
CliRun RunCli(const std::vector<std::string>& args, const std::string& stdin_text = "");

// A fresh, empty temporary directory unique to the running test, removed when the test ends
// (kept, and named on stderr, when it fails).
std::filesystem::path TempDir();

// Result of comparing `got` against `ref` elementwise with |a-b| <= atol + rtol*|ref|.
struct CloseReport {
  double max_abs_error = 0;
  double max_rel_error = 0;  // |a-b| / max(|ref|, 1e-12)
  size_t worst_index = 0;    // index of the element with the largest excess over the tolerance
  size_t violations = 0;
  std::string Describe() const;
};
CloseReport CompareClose(std::span<const float> got, std::span<const float> ref, double atol,
                         double rtol);

// Copies the F32 model folder `model_dir` to `dest` with one value of one tensor replaced (e.g. by
// NaN or Inf), located through the safetensors header of dest/model.safetensors. Returns dest.
std::filesystem::path PoisonedModelCopy(const std::filesystem::path& model_dir,
                                        const std::filesystem::path& dest,
                                        const std::string& tensor, int64_t element, float value);

// Runs `f`, expecting an exception of type E whose message contains every one of `needles`.
template <typename E>
void ExpectThrowMentioning(const std::function<void()>& f,
                           const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '"
                  << (needles.empty() ? std::string() : needles.front()) << "'";
  } catch (const E& e) {
    for (const auto& n : needles) {
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message lacks '" << n << "': " << e.what();
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace rwkv_embed::testing

// Skips the current test with a clear message when a shared file is absent.
// NOLINTBEGIN(bugprone-macro-parentheses): `var` names the declared variable.
#define RWKV_EMBED_REQUIRE_SHARED(var, relative)                                 \
  const std::filesystem::path var = ::rwkv_embed::testing::SharedFile(relative); \
  if (var.empty())                                                               \
  GTEST_SKIP() << "shared file absent: " << (relative)                           \
               << " (set RWKV_EMBED_SHARED to the shared/ folder)"
// NOLINTEND(bugprone-macro-parentheses)
