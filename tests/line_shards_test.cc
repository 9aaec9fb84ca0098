// Shards of a sentence file cut at line ends (data/line_shards.h), as the MPI embed plans them.
#include "data/line_shards.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "core/error.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;

fs::path WriteText(const std::string& text) {
  fs::path p = testing::TempDir() / "in.txt";
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

int64_t GetlineCount(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

// Every shard size from 1 byte to past the file: the ranges tile the file, every cut is just
// after a '\n', and the lines counted per shard add up to what std::getline reads (the rule of
// `embed`), with or without a final '\n', with "\r\n" endings and a line longer than a shard.
TEST(LineShardsTest, RangesTileTheFileAtLineEndsAndCountLikeGetline) {
  for (const std::string& text :
       {std::string("a\nbb\nccc\n"), std::string("a\nbb\nccc"), std::string("x"),
        std::string(
            "\xEF\xBB\xBFone\r\ntwo\r\nthree is a much longer line than the others\nz\n")}) {
    const fs::path p = WriteText(text);
    const auto size = static_cast<int64_t>(text.size());
    for (int64_t shard = 1; shard <= size + 2; ++shard) {
      const auto ranges = SplitAtLines(p, size, shard);
      ASSERT_FALSE(ranges.empty());
      int64_t at = 0, lines = 0;
      std::string joined;
      for (const ByteRange& r : ranges) {
        EXPECT_EQ(r.begin, at);
        EXPECT_GT(r.end, r.begin) << "empty shard at " << r.begin;
        if (r.end < size) {
          EXPECT_EQ(text[static_cast<size_t>(r.end - 1)], '\n') << "cut inside a line at " << r.end;
        }
        lines += CountLines(p, r);
        joined += ReadRange(p, r);
        at = r.end;
      }
      EXPECT_EQ(at, size);
      EXPECT_EQ(joined, text);
      EXPECT_EQ(lines, GetlineCount(text)) << "shard bytes " << shard;
      if (shard >= size) {
        EXPECT_EQ(ranges.size(), 1u);
      }
    }
  }
}

TEST(LineShardsTest, EmptyFileHasNoShardsAndErrorsNameTheFile) {
  const fs::path p = WriteText("");
  EXPECT_TRUE(SplitAtLines(p, 0, 10).empty());
  const fs::path absent = testing::TempDir() / "absent.txt";
  try {
    (void)SplitAtLines(absent, 5, 2);
    FAIL() << "no error for an absent file";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("absent.txt"), std::string::npos) << e.what();
  }
  const fs::path q = WriteText("abc\n");
  EXPECT_THROW((void)ReadRange(q, {0, 10}), IoError);  // the file shrank under the plan
  EXPECT_THROW((void)SplitAtLines(q, 4, 0), UsageError);
}

TEST(DefaultShardBytesTest, SixteenShardsARankWithinFourKiBAndFourMiB) {
  EXPECT_EQ(DefaultShardBytes(16.0 * 2 * 10000, 2), 10000);     // 16 shards per rank
  EXPECT_EQ(DefaultShardBytes(1000, 4), 4096);                  // small inputs: 4 KiB
  EXPECT_EQ(DefaultShardBytes(1e12, 64), int64_t{4} << 20);     // large inputs: 4 MiB
  EXPECT_EQ(DefaultShardBytes(16.0 * 3 * 5000 + 47, 3), 5000);  // whole bytes, rounded down
}

}  // namespace
}  // namespace rwkv_embed
