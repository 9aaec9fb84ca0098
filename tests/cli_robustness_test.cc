// Issue 10 (robustness audit), the command-line findings: every rejection of the command line
// exits 2, outputs are checked before any work and written through .partial, sizes are checked
// against memory, out of memory exits 8, an input BOM is stripped, messages never echo raw binary
// bytes, and no JSON parser lets a raw nlohmann exception escape.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "core/utf8.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/rwkv6/rwkv6_config.h"
#include "test_util.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {
namespace {

using testing::ReadFile;
using testing::RunCli;

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

void Write(const std::filesystem::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
}

// Every file under `dir` whose name ends in ".partial".
std::vector<std::string> PartialFiles(const std::filesystem::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().string().ends_with(".partial")) found.push_back(e.path().string());
  }
  return found;
}

// A message is safe to print when it is valid UTF-8 without control characters but '\n'.
void ExpectPrintable(const std::string& msg) {
  EXPECT_TRUE(IsValidUtf8(msg)) << msg;
  for (char c : msg) {
    const auto b = static_cast<unsigned char>(c);
    EXPECT_FALSE((b < 0x20 && b != '\n') || b == 0x7F) << "byte " << int(b) << " in: " << msg;
  }
}

TEST(CliExitCodesTest, EveryCommandLineRejectionExitsTwo) {
  RWKV_EMBED_REQUIRE_SHARED(weights, "models/tiny-rwkv6-bf16/model.safetensors");
  const std::string model = weights.parent_path().string();
  const std::string out = (testing::TempDir() / "o.npy").string();
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"embed", "--model", model, "--output", out, "--bogus"}, "--bogus"},  // unknown flag
      {{"embed", "--output", out}, "--model"},                               // missing option
      {{"embed", "--model", model, "--output", out, "--threads", "0"}, "--threads"},
      {{"embed", "--model", model, "--model", model, "--output", out}, "--model"},    // duplicate
      {{"eval", "--task", "qqp", "--split", "dev", "--output", "x.json"}, "--task"},  // bad choice
      {{"bench", "--model", model, "-o", "xml"}, "-o"},
      // Overflowing and out-of-range numbers: CLI11 saturated the first to INT64_MAX.
      {{"embed", "--model", model, "--output", out, "--batch-tokens", "99999999999999999999"},
       "--batch-tokens"},
      {{"embed", "--model", model, "--output", out, "--batch-tokens", "2e3"}, "--batch-tokens"},
      {{"eval", "--pairs", "p.tsv", "--output", "x.json", "--seed", "-1"}, "--seed"},
      {{"eval", "--pairs", "p.tsv", "--output", "x.json", "--bootstrap", "1e12"}, "--bootstrap"},
      {{"eval", "--pairs", "p.tsv", "--output", "x.json", "--undefined-cosine", "nan"},
       "--undefined-cosine"},
      {{"frobnicate", "--model", model}, "unknown command 'frobnicate'"},
      {{}, "no command given"},
  };
  for (const Case& c : cases) {
    const auto r = RunCli(c.args, "x\n");
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    EXPECT_EQ(r.exit_code, 2) << line << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.needle)) << line << "\n" << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << line;
  }
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"--version"}, {"embed", "--help"}, {"eval", "--help"}}) {
    const auto r = RunCli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << "\n" << r.err;
    EXPECT_FALSE(r.out.empty());
  }
}

// Output paths fail at once, naming the option, before inputs or models are even opened (each
// command below also names a missing model or input: the output must be reported first).
TEST(CliExitCodesTest, OutputPathsAreCheckedBeforeAnyWork) {
  const auto dir = testing::TempDir();
  std::filesystem::create_directories(dir / "folder.npy");
  std::filesystem::create_directories(dir / "folder.json");
  const std::string missing = (dir / "missing" / "out").string();
  Write(dir / "file", "x");
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"embed", "--model", "/nonexistent", "--output", (dir / "folder.npy").string()},
       "--output " + (dir / "folder.npy").string() + " is a folder"},
      {{"embed", "--model", "/nonexistent", "--output", missing + ".npy"},
       (dir / "missing").string() + " does not exist"},
      {{"eval", "--pairs", "/nonexistent.tsv", "--glove", "/nonexistent", "--output",
        (dir / "folder.json").string()},
       "--output " + (dir / "folder.json").string() + " is a folder"},
      {{"eval", "--task", "mrpc", "--split", "dev", "--data-dir", "/nonexistent", "--glove",
        "/nonexistent", "--output", missing + ".json"},
       "does not exist"},
      {{"bench", "--model", "/nonexistent", "--output", dir.string()}, "is a folder"},
      {{"bench", "--model", "/nonexistent", "-o", "both", "--output", missing},
       (dir / "missing").string() + " does not exist"},
      {{"reproduce", "--model", "/nonexistent", "--glove", "/nonexistent", "--data-dir",
        "/nonexistent", "--out", (dir / "file").string()},
       "is a file, not a folder"},
      {{"reproduce", "--model", "/nonexistent", "--glove", "/nonexistent", "--data-dir",
        "/nonexistent", "--out", (dir / "file" / "sub").string()},
       "is a file, not a folder"},
  };
  for (const Case& c : cases) {
    const auto r = RunCli(c.args, "x\n");
    EXPECT_EQ(r.exit_code, 3) << c.args[0] << "\n" << r.err;  // IoError
    EXPECT_TRUE(Contains(r.err, c.needle)) << c.args[0] << ": " << r.err;
    EXPECT_FALSE(Contains(r.err, "/nonexistent")) << "an input was opened first: " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "missing"));
}

// `reproduce` validated nothing before creating OUT/<model>/, and left it empty on failure.
TEST(CliExitCodesTest, ReproduceLeavesNoEmptyOutputFolders) {
  RWKV_EMBED_REQUIRE_SHARED(weights, "models/tiny-rwkv6-bf16/model.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(glove, "vectors/glove.6B.100d.mrpc-stsb.txt");
  const auto dir = testing::TempDir();
  const std::string model = weights.parent_path().string();
  auto r = RunCli({"reproduce", "--model", model, "--glove", glove.string(), "--data-dir",
                   (dir / "no-data").string(), "--out", (dir / "out").string()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(Contains(r.err, "--data-dir " + (dir / "no-data").string())) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  // A data folder without the files: fails while loading, after the folders were made.
  std::filesystem::create_directories(dir / "empty-data");
  r = RunCli({"reproduce", "--model", model, "--glove", glove.string(), "--data-dir",
              (dir / "empty-data").string(), "--out", (dir / "out" / "nested").string()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(Contains(r.err, "train.tsv")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  // An existing OUT stays, even when the run fails.
  std::filesystem::create_directories(dir / "kept");
  r = RunCli({"reproduce", "--model", model, "--glove", glove.string(), "--data-dir",
              (dir / "empty-data").string(), "--out", (dir / "kept").string()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(std::filesystem::is_directory(dir / "kept"));
  EXPECT_TRUE(std::filesystem::is_empty(dir / "kept"));
}

// A UTF-8 byte order mark before the first sentence was embedded as part of it.
TEST(CliExitCodesTest, EmbedStripsALeadingByteOrderMark) {
  RWKV_EMBED_REQUIRE_SHARED(weights, "models/tiny-rwkv6-bf16/model.safetensors");
  const std::string model = weights.parent_path().string();
  const auto dir = testing::TempDir();
  const auto plain = dir / "plain.jsonl", bom = dir / "bom.jsonl";
  auto r = RunCli({"embed", "--model", model, "--output", plain.string()}, "Hello world\nsecond\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunCli({"embed", "--model", model, "--output", bom.string()},
             "\xEF\xBB\xBFHello world\nsecond\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(bom), ReadFile(plain));
  EXPECT_TRUE(PartialFiles(dir).empty());
}

// `bench --lengths 1e11` and `--gemm-shape 1e6,1e6,1e6` ended in std::bad_alloc (exit 1).
TEST(CliExitCodesTest, BenchSizesAreCheckedAgainstAvailableMemory) {
  RWKV_EMBED_REQUIRE_SHARED(weights, "models/tiny-rwkv6-bf16/model.safetensors");
  if (!AvailableMemoryBytes()) GTEST_SKIP() << "no MemAvailable in /proc/meminfo";
  const std::string model = weights.parent_path().string();
  auto r = RunCli({"bench", "--model", model, "--lengths", "100000000000", "--gemm-shape", "0,1,1",
                   "--threads", "1", "-r", "1", "--latency-pairs", "0"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Contains(r.err, "--lengths 100000000000")) << r.err;
  EXPECT_TRUE(Contains(r.err, "of memory available")) << r.err;
  r = RunCli({"bench", "--model", model, "--lengths", "8", "--gemm-shape",
              "1000000,1000000,1000000", "--threads", "1", "-r", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Contains(r.err, "--gemm-shape 1000000,1000000,1000000")) << r.err;
  r = RunCli({"bench", "--model", model, "--lengths", "8", "--gemm-shape", "0,1,1",
              "--batch-tokens", "1000000000", "--threads", "1", "-r", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Contains(r.err, "--batch-tokens 1000000000")) << r.err;
}

// An allocation that passes the up-front checks but still fails (here: under `ulimit -v`) exits
// 8 with a message saying so, instead of "std::bad_alloc" and exit 1.
TEST(CliExitCodesTest, OutOfMemoryExitsEight) {
  RWKV_EMBED_REQUIRE_SHARED(weights, "models/tiny-rwkv6-bf16/model.safetensors");
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: no ulimit -v under it";
#endif
  const auto available = AvailableMemoryBytes();
  if (!available || *available < (int64_t{2} << 30)) GTEST_SKIP() << "needs 2 GiB available";
  const auto dir = testing::TempDir();
  // A 1 GiB GEMM under a 600 MB address-space limit.
  const std::string cmd = "ulimit -v 600000; '" + testing::CliPath().string() +
                          "' bench --model '" + weights.parent_path().string() +
                          "' --gemm-shape 8192,8192,16384 --lengths 8 --threads 1 -r 1 2> '" +
                          (dir / "err").string() + "' > /dev/null";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kOutOfMemoryExit) << ReadFile(dir / "err");
  EXPECT_TRUE(Contains(ReadFile(dir / "err"), "out of memory while running 'bench'"))
      << ReadFile(dir / "err");
}

TEST(AtomicFileTest, PartialFileCommitsOrLeavesTheOldFile) {
  const auto dir = testing::TempDir();
  const auto path = dir / "out.txt";
  WriteFileAtomically(path, "first");
  EXPECT_EQ(ReadFile(path), "first");
  {
    PartialFile p(path);
    EXPECT_EQ(p.path(), dir / "out.txt.partial");
    Write(p.path(), "half");
    // Destroyed without Commit (an error): the old file stays, the .partial goes.
  }
  EXPECT_EQ(ReadFile(path), "first");
  EXPECT_FALSE(std::filesystem::exists(dir / "out.txt.partial"));
  WriteFileAtomically(path, "second");
  EXPECT_EQ(ReadFile(path), "second");
  EXPECT_TRUE(PartialFiles(dir).empty());
  EXPECT_THROW(WriteFileAtomically(dir / "no" / "x.txt", "x"), IoError);
}

TEST(AtomicFileTest, OutputChecksAndCreatedFolders) {
  const auto dir = testing::TempDir();
  Write(dir / "file", "x");
  EXPECT_NO_THROW(CheckOutputFile(dir / "new.json", "--output"));
  EXPECT_NO_THROW(CheckOutputFile(dir / "file", "--output"));  // overwriting a file is fine
  EXPECT_THROW(CheckOutputFile(dir, "--output"), IoError);
  EXPECT_THROW(CheckOutputFile(dir / "missing" / "x.json", "--output"), IoError);
  EXPECT_THROW(CheckOutputFile(dir / "file" / "x.json", "--output"), IoError);
  EXPECT_NO_THROW(CheckOutputFolder(dir / "a" / "b" / "c", "--out"));
  EXPECT_NO_THROW(CheckOutputFolder(dir, "--out"));
  EXPECT_THROW(CheckOutputFolder(dir / "file", "--out"), IoError);
  EXPECT_THROW(CheckOutputFolder(dir / "file" / "sub", "--out"), IoError);
  {
    CreatedFolders created(dir / "a" / "b" / "c");
    EXPECT_TRUE(std::filesystem::is_directory(dir / "a" / "b" / "c"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "a"));  // all three removed again
  {
    CreatedFolders created(dir / "a" / "b");
    Write(dir / "a" / "b" / "result", "x");
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "a" / "b" / "result"));  // never removes content
  {
    CreatedFolders created(dir / "k" / "l");
    created.Keep();
  }
  EXPECT_TRUE(std::filesystem::is_directory(dir / "k" / "l"));
}

TEST(MemoryTest, AvailableMemoryAndChecks) {
  const auto available = AvailableMemoryBytes();
  if (!available) GTEST_SKIP() << "no MemAvailable in /proc/meminfo";
  EXPECT_GT(*available, 0u);
  EXPECT_NO_THROW(RequireMemory(1 << 20, "--small"));
  try {
    RequireMemory(CheckedMul(*available, 2).value_or(UINT64_MAX), "--lengths 99");
    ADD_FAILURE() << "no UsageError";
  } catch (const UsageError& e) {
    EXPECT_TRUE(Contains(e.what(), "--lengths 99 needs")) << e.what();
  }
}

// Messages that quote file content escape it (NUL, control bytes, ill-formed UTF-8).
TEST(ErrorMessageTest, SafetensorsVocabularyAndConfigQuoteFileContentEscaped) {
  const auto dir = testing::TempDir();
  const auto st = [&](const std::string& name, const std::string& header) {
    std::string bytes(8, '\0');
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
    Write(dir / name, bytes + header + std::string(4, '\0'));
    return dir / name;
  };
  const auto dtype = st("dtype.safetensors",
                        R"({"w\u0000x":{"dtype":"\u0001F32","shape":[1],"data_offsets":[0,4]}})");
  const auto fragment = st("fragment.safetensors", "{\"w\xff\x01\": 1}");
  for (const auto& path : {dtype, fragment}) {
    try {
      SafetensorsFile::Open(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const FormatError& e) {
      ExpectPrintable(e.what());
      if (path == dtype) {
        EXPECT_TRUE(Contains(e.what(), "'w\\x00x'")) << e.what();
        EXPECT_TRUE(Contains(e.what(), "'\\x01F32'")) << e.what();
      }
    }
  }
  Write(dir / "vocab.txt", std::string("1 'a' 1\nbinary\x01\x02junk\n"));
  try {
    WorldTokenizer::FromVocabFile(dir / "vocab.txt");
    ADD_FAILURE() << "no error for the vocabulary";
  } catch (const FormatError& e) {
    ExpectPrintable(e.what());
    EXPECT_TRUE(Contains(e.what(), "binary\\x01\\x02junk")) << e.what();
  }
  // A wrongly typed field was a raw json::type_error (exit 1).
  Write(dir / "config.json", R"({"vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 1,)"
                             R"( "rwkv_embed_random_weights": "yes"})");
  EXPECT_THROW(ModelConfig::FromJsonFile(dir / "config.json"), FormatError);
  Write(dir / "config.json", "{\"vocab_size\": 1e400}");
  EXPECT_THROW(ModelConfig::FromJsonFile(dir / "config.json"), FormatError);
}

}  // namespace
}  // namespace rwkv_embed
