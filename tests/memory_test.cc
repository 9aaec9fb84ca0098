// core/memory.h: overflow-checked sizes and the up-front memory / disk checks.
#include "core/memory.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

#include "core/error.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(MemoryTest, CheckedArithmetic) {
  EXPECT_EQ(CheckedMul(3, 5), 15u);
  EXPECT_EQ(CheckedMul(uint64_t{1} << 32, uint64_t{1} << 31), uint64_t{1} << 63);
  EXPECT_EQ(CheckedMul(uint64_t{1} << 32, uint64_t{1} << 32), std::nullopt);
  EXPECT_EQ(CheckedMul(kMax, 0), 0u);
  EXPECT_EQ(CheckedAdd(kMax - 1, 1), kMax);
  EXPECT_EQ(CheckedAdd(kMax, 1), std::nullopt);
}

TEST(MemoryTest, FormatsBinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(uint64_t{3} << 30), "3.00 GiB");
  EXPECT_EQ(FormatBytes(kMax), "16.00 EiB");
}

TEST(MemoryTest, AvailableMemoryMatchesProcMeminfo) {
  std::ifstream in("/proc/meminfo");
  if (!in) GTEST_SKIP() << "no /proc/meminfo";
  std::string key, unit;
  uint64_t kib = 0;
  while (in >> key >> kib >> unit && key != "MemAvailable:") {
  }
  ASSERT_EQ(key, "MemAvailable:");
  const std::optional<uint64_t> got = AvailableMemoryBytes();
  ASSERT_TRUE(got.has_value());
  // Read a moment apart: equal up to what other processes did in between (1 GiB is generous).
  const double diff = static_cast<double>(*got) - static_cast<double>(kib) * 1024.0;
  EXPECT_LT(std::abs(diff), 1024.0 * 1024 * 1024);
}

TEST(MemoryTest, RequireMemoryAndDiskNameWhatAsked) {
  EXPECT_NO_THROW(RequireMemory(1, "one byte"));
  try {
    RequireMemory(kMax, "--lengths 1e18");
    FAIL() << "no UsageError";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--lengths 1e18 needs 16.00 EiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("memory available"), std::string::npos) << msg;
  }
  const auto dir = testing::TempDir();
  EXPECT_TRUE(AvailableDiskBytes(dir / "not/yet/created").has_value());  // nearest ancestor
  EXPECT_NO_THROW(RequireDiskSpace(1, dir, "one byte"));
  try {
    RequireDiskSpace(kMax, dir / "out", "--out X");
    FAIL() << "no UsageError";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--out X needs"), std::string::npos) << msg;
    EXPECT_NE(msg.find((dir / "out").string()), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace rwkv_embed
