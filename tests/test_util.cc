#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace rwkv_embed::testing {

std::filesystem::path SharedDir() {
  if (const char* env = std::getenv("RWKV_EMBED_SHARED"); env != nullptr && *env != '\0') {
    return env;
  }
  return RWKV_EMBED_SHARED_DEFAULT;
}

std::filesystem::path SharedFile(const std::string& relative) {
  std::filesystem::path p = SharedDir() / relative;
  return std::filesystem::exists(p) ? p : std::filesystem::path();
}

std::filesystem::path CliPath() { return RWKV_EMBED_CLI_PATH; }

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

ShellRun RunShell(const std::string& command, const std::filesystem::path& dir) {
  const std::filesystem::path err = dir / "stderr.txt";
  const int status = std::system((command + " >/dev/null 2>" + ShellQuote(err.string())).c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(err)};
}

CliRun RunCli(const std::vector<std::string>& args, const std::string& stdin_text) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("rwkv_embed_cli_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "stdin", std::ios::binary) << stdin_text; }
  std::string cmd = ShellQuote(CliPath().string());
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " <" + ShellQuote((dir / "stdin").string()) + " >" +
         ShellQuote((dir / "stdout").string()) + " 2>" + ShellQuote((dir / "stderr").string());
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(dir / "stdout");
  r.err = ReadFile(dir / "stderr");
  std::filesystem::remove_all(dir);
  return r;
}

namespace {

// Removes each test's TempDir when the test ends, unless it failed (then the folder is kept and
// named, for a look at what the test wrote). Without this every ctest run left ~2 GB in /tmp.
class TempDirCleaner : public ::testing::EmptyTestEventListener {
 public:
  static TempDirCleaner& Instance() {
    // Owned by gtest's listener list once appended (it deletes it at exit).
    static TempDirCleaner* cleaner = [] {
      auto* c = new TempDirCleaner;
      ::testing::UnitTest::GetInstance()->listeners().Append(c);
      return c;
    }();
    return *cleaner;
  }
  void Track(const std::filesystem::path& dir) { dirs_.push_back(dir); }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    for (const auto& dir : dirs_) {
      if (info.result()->Failed()) {
        std::cerr << "kept the failed test's folder " << dir << "\n";
      } else {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      }
    }
    dirs_.clear();
  }

 private:
  std::vector<std::filesystem::path> dirs_;
};

}  // namespace

std::filesystem::path TempDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  // The pid keeps concurrent runs (two build trees, parallel ctest) out of each other's way.
  std::string name = "rwkv_embed_test_" + std::to_string(::getpid());
  if (info != nullptr) name += std::string("_") + info->test_suite_name() + "_" + info->name();
  std::replace(name.begin(), name.end(), '/', '_');
  auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  if (info != nullptr) TempDirCleaner::Instance().Track(dir);
  return dir;
}

std::string CloseReport::Describe() const {
  std::ostringstream os;
  os << "max_abs_error=" << max_abs_error << " max_rel_error=" << max_rel_error
     << " violations=" << violations << " (worst at index " << worst_index << ")";
  return os.str();
}

CloseReport CompareClose(std::span<const float> got, std::span<const float> ref, double atol,
                         double rtol) {
  EXPECT_EQ(got.size(), ref.size());
  CloseReport r;
  double worst_excess = -1;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    const double a = got[i], b = ref[i];
    const double err = std::isfinite(a) ? std::abs(a - b) : INFINITY;
    r.max_abs_error = std::max(r.max_abs_error, err);
    r.max_rel_error = std::max(r.max_rel_error, err / std::max(std::abs(b), 1e-12));
    const double excess = err - (atol + rtol * std::abs(b));
    if (excess > 0) ++r.violations;
    if (excess > worst_excess) {
      worst_excess = excess;
      r.worst_index = i;
    }
  }
  return r;
}

std::filesystem::path PoisonedModelCopy(const std::filesystem::path& model_dir,
                                        const std::filesystem::path& dest,
                                        const std::string& tensor, int64_t element, float value) {
  std::filesystem::copy(model_dir, dest);
  const auto file = dest / "model.safetensors";
  std::filesystem::permissions(file, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  // 8-byte little-endian header length, the JSON header, then the data region.
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j.at(tensor).at("dtype"), "F32") << tensor;
  const auto offsets = j.at(tensor).at("data_offsets");
  const uint64_t at = 8 + header_len + offsets[0].get<uint64_t>() + 4 * element;
  EXPECT_LE(at + 4, 8 + header_len + offsets[1].get<uint64_t>()) << tensor << " " << element;
  f.seekp(static_cast<std::streamoff>(at));
  f.write(reinterpret_cast<const char*>(&value), 4);
  EXPECT_TRUE(f.good()) << file;
  return dest;
}

}  // namespace rwkv_embed::testing
