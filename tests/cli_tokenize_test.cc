// End-to-end tests of `rwkv-embed tokenize`: both input modes against golden ids, --stats, and
// the error paths (exit code and a message naming the input line).
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace rwkv_embed {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `rwkv-embed tokenize <args>` with `input` on stdin.
RunResult RunTokenize(const std::string& args, const std::string& input) {
  const auto dir = testing::TempDir();
  std::ofstream(dir / "in", std::ios::binary) << input;
  const std::string cmd = "'" + testing::CliPath().string() + "' tokenize " + args + " < '" +
                          (dir / "in").string() + "' > '" + (dir / "out").string() + "' 2> '" +
                          (dir / "err").string() + "'";
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(dir / "out");
  r.err = ReadFile(dir / "err");
  return r;
}

// The "ids" arrays of the output lines.
std::vector<std::vector<int32_t>> ParseIds(const std::string& out) {
  std::vector<std::vector<int32_t>> all;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    all.push_back(nlohmann::json::parse(line).at("ids").get<std::vector<int32_t>>());
  }
  return all;
}

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(CliTokenizeTest, PlainLines) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  // CRLF line, an empty line, and a last line without a newline; ids from tokenizer-golden.jsonl.
  const auto r = RunTokenize("--vocab '" + vocab.string() + "'",
                             "Hello world!\r\n\n  leading and trailing spaces  ");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"ids\":[33155,40213,34]}\n{\"ids\":[]}\n"
            "{\"ids\":[267,49366,21265,57451,47345,267]}\n");
}

TEST(CliTokenizeTest, JsonlMatchesGoldenAndModelFolder) {
  RWKV_EMBED_REQUIRE_SHARED(golden, "data/tokenizer-golden.jsonl");
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/rwkv_vocab_v20230424.txt");
  // The first 300 golden records: edge cases with newlines, control characters, CJK, emoji.
  std::ifstream in(golden);
  std::string line, input;
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; i < 300 && std::getline(in, line); ++i) {
    input += line + "\n";
    if (i == 10) input += "\n";  // a blank line between records is skipped
    want.push_back(nlohmann::json::parse(line).at("ids").get<std::vector<int32_t>>());
  }
  const auto r =
      RunTokenize("--jsonl --stats --model '" + model.parent_path().string() + "'", input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = ParseIds(r.out);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "record " << i;
  EXPECT_TRUE(Contains(r.err, "texts 300, tokens ")) << r.err;
  EXPECT_TRUE(Contains(r.err, "MB/s")) << r.err;
}

TEST(CliTokenizeTest, ErrorsNameTheLine) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  const std::string v = "--vocab '" + vocab.string() + "'";
  struct Case {
    std::string args, input;
    int exit_code;
    std::vector<std::string> needles;
    int out_lines = 0;
  };
  const std::vector<Case> cases = {
      {"--jsonl " + v,
       "{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\": oops}\n",
       4,
       {"standard input line 3", "invalid JSON"},
       2},
      {"--jsonl " + v,
       "{\"text\":\"a\"}\n{\"txt\":\"b\"}\n",
       6,
       {"standard input line 2", "\"text\""},
       1},
      {"--jsonl " + v, "{\"text\":\"a\"}\n{\"text\":7}\n", 6, {"standard input line 2"}, 1},
      {"--jsonl " + v,
       "{\"text\":\"a\xff\"}\n",
       4,
       {"invalid UTF-8 in standard input line 1 at byte 10"}},
      {v, "fine\nbad \xC0\x80 bytes\n", 4, {"invalid UTF-8 in standard input line 2 at byte 4"}, 1},
      {"", "x\n", 2, {"--vocab FILE or --model DIR"}},
      {v + " --model /tmp", "x\n", 2, {"exactly one of"}},
      {"--model '" + (testing::SharedDir() / "data").string() + "'",
       "x\n",
       3,
       {"has no rwkv_vocab_v20230424.txt"}},
      {"--model /nonexistent-folder", "x\n", 3, {"/nonexistent-folder does not exist"}},
  };
  for (const auto& c : cases) {
    const auto r = RunTokenize(c.args, c.input);
    // The lines before the failing one were tokenized and written.
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), c.out_lines) << c.input;
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args << "\n" << r.err;
    for (const auto& needle : c.needles) {
      EXPECT_TRUE(Contains(r.err, needle)) << "stderr `" << r.err << "` lacks `" << needle << "`";
    }
  }
}

// Issue 10, item 7: a number beyond double (json out_of_range 406) escaped as a raw exception:
// exit 1, no line number, and the output of the good lines before it was lost.
TEST(CliTokenizeTest, JsonNumberOverflowNamesTheLineAndKeepsTheLinesBefore) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  const std::string input =
      "{\"text\":\"Hello "
      "world!\"}\n{\"text\":\"b\"}\n{\"text\":\"c\",\"n\":1e400}\n{\"text\":\"d\"}\n";
  const auto r = RunTokenize("--jsonl --vocab '" + vocab.string() + "'", input);
  EXPECT_EQ(r.exit_code, 4) << r.err;  // FormatError
  EXPECT_TRUE(Contains(r.err, "standard input line 3")) << r.err;
  EXPECT_TRUE(Contains(r.err, "1e400")) << r.err;
  const auto got = ParseIds(r.out);
  ASSERT_EQ(got.size(), 2u) << r.out;
  EXPECT_EQ(got[0], (std::vector<int32_t>{33155, 40213, 34}));
}

// --output FILE is written through FILE.partial: complete, or untouched (and no .partial left).
TEST(CliTokenizeTest, OutputFileIsAtomicAndCheckedFirst) {
  RWKV_EMBED_REQUIRE_SHARED(vocab, "models/rwkv_vocab_v20230424.txt");
  // Not TempDir(): RunTokenize empties that one on every run.
  const auto dir = testing::TempDir() / ".." / (testing::TempDir().filename().string() + "_out");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto out = dir / "ids.jsonl";
  const std::string v = "--vocab '" + vocab.string() + "' --output '" + out.string() + "'";
  auto r = RunTokenize(v, "Hello world!\nsecond\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const std::string complete = ReadFile(out);
  EXPECT_EQ(ParseIds(complete).size(), 2u) << complete;
  r = RunTokenize("--jsonl " + v, "{\"text\":\"x\"}\n{\"text\": 1e400}\n");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(ReadFile(out), complete);  // the previous output is intact
  EXPECT_FALSE(std::filesystem::exists(out.string() + ".partial"));
  // A folder, or a missing folder, fails before any input is read.
  for (const std::string& bad : {dir.string(), (dir / "missing" / "ids.jsonl").string()}) {
    r = RunTokenize("--vocab '" + vocab.string() + "' --output '" + bad + "'", "x\n");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_TRUE(Contains(r.err, "--output " + bad)) << r.err;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rwkv_embed
