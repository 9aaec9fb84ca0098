#include "io/npy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using ::rwkv_embed::testing::ReadFile;
using ::rwkv_embed::testing::TempDir;

void WriteAll(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// What numpy 1.24.2 writes for np.save(f, np.array([[1.5, -2], [0.25, 3]], dtype='<f4')):
// 144 bytes = 10-byte preamble + 118-byte header + 16 data bytes.
std::string NumpyFile2x2() {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  header.append(117 - header.size(), ' ');
  header += '\n';
  const std::string preamble("\x93NUMPY\x01\x00\x76\x00", 10);  // v1.0, HEADER_LEN 0x76 = 118
  const std::string data("\x00\x00\xc0\x3f\x00\x00\x00\xc0\x00\x00\x80\x3e\x00\x00\x40\x40", 16);
  return preamble + header + data;
}

TEST(NpyTest, WritesExactlyWhatNumpyWrites) {
  const fs::path p = TempDir() / "a.npy";
  const std::vector<int64_t> shape = {2, 2};
  const std::vector<float> data = {1.5f, -2.0f, 0.25f, 3.0f};
  WriteNpyF32(p, shape, data);
  const std::string bytes = ReadFile(p);
  EXPECT_EQ(bytes.size(), 144u);
  EXPECT_EQ(bytes, NumpyFile2x2());
}

TEST(NpyTest, HeaderLayoutFor1DAnd0D) {
  const fs::path dir = TempDir();
  const std::vector<float> five = {1, 2, 3, 4, 5};
  WriteNpyF32(dir / "v.npy", std::vector<int64_t>{5}, five);
  const std::string v = ReadFile(dir / "v.npy");
  ASSERT_EQ(v.size(), 128u + 20u);
  EXPECT_EQ(v.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(static_cast<uint8_t>(v[8]) | static_cast<uint8_t>(v[9]) << 8, 118);
  // 1-D shapes are Python 1-tuples "(5,)".
  EXPECT_EQ(v.substr(10, 57), "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }");
  EXPECT_EQ(v.substr(67, 60), std::string(60, ' '));
  EXPECT_EQ(v[127], '\n');

  const std::vector<float> one = {7.0f};
  WriteNpyF32(dir / "s.npy", std::vector<int64_t>{}, one);
  const std::string s = ReadFile(dir / "s.npy");
  EXPECT_NE(s.find("'shape': (), }"), std::string::npos);
  EXPECT_EQ(s.size(), 128u + 4u);
  const NpyArray back = ReadNpyF32(dir / "s.npy");
  EXPECT_TRUE(back.shape.empty());
  EXPECT_EQ(back.data, one);
}

TEST(NpyTest, PreambleIsAlwaysAMultipleOf64) {
  const fs::path dir = TempDir();
  // Shapes whose dict text crosses the 64-byte boundaries at different places.
  for (int dims = 1; dims <= 12; ++dims) {
    const std::vector<int64_t> shape(dims, 1);
    const std::vector<float> x = {0.5f};
    WriteNpyF32(dir / "x.npy", shape, x);
    const std::string b = ReadFile(dir / "x.npy");
    const size_t header_len = static_cast<uint8_t>(b[8]) | static_cast<uint8_t>(b[9]) << 8;
    EXPECT_EQ((10 + header_len) % 64, 0u) << dims;
    EXPECT_EQ(b[10 + header_len - 1], '\n') << dims;
    EXPECT_EQ(b.size(), 10 + header_len + 4) << dims;
    EXPECT_EQ(ReadNpyF32(dir / "x.npy").shape, shape) << dims;
  }
}

TEST(NpyTest, RoundTrips3DIncludingNonFinite) {
  const fs::path p = TempDir() / "r.npy";
  const std::vector<int64_t> shape = {2, 3, 4};
  std::vector<float> data(24);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i) * 0.1f - 1.0f;
  data[5] = std::numeric_limits<float>::quiet_NaN();
  data[6] = -std::numeric_limits<float>::infinity();
  data[7] = std::numeric_limits<float>::denorm_min();
  WriteNpyF32(p, shape, data);
  const NpyArray a = ReadNpyF32(p);
  EXPECT_EQ(a.shape, shape);
  ASSERT_EQ(a.data.size(), data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    if (i == 5) {
      EXPECT_TRUE(std::isnan(a.data[i]));  // NaN stays NaN
    } else {
      EXPECT_EQ(a.data[i], data[i]) << i;
    }
  }
}

TEST(NpyTest, ReadsNumpyOutputIncludingOtherPadding) {
  const fs::path dir = TempDir();
  WriteAll(dir / "a.npy", NumpyFile2x2());
  NpyArray a = ReadNpyF32(dir / "a.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{1.5f, -2.0f, 0.25f, 3.0f}));

  // A v2.0 file (uint32 header length), keys in another order, no trailing comma.
  std::string header = "{'shape': (3,), 'fortran_order': False, 'descr': '<f4'}";
  header.append(64 - (12 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string v2("\x93NUMPY\x02\x00", 8);
  const auto len = static_cast<uint32_t>(header.size());
  v2.append(reinterpret_cast<const char*>(&len), 4);
  const float xs[3] = {1.0f, 2.0f, -3.0f};
  v2 += header + std::string(reinterpret_cast<const char*>(xs), sizeof(xs));
  WriteAll(dir / "v2.npy", v2);
  a = ReadNpyF32(dir / "v2.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(a.data, (std::vector<float>{1.0f, 2.0f, -3.0f}));
}

// Replaces the dict in NumpyFile2x2 (keeping the preamble length valid) and expects a
// FormatError naming the file and `what`.
void ExpectBadHeader(const std::string& dict, const std::string& what, size_t data_bytes = 16) {
  const fs::path p = TempDir() / "bad.npy";
  std::string header = dict;
  header.append(117 - header.size(), ' ');
  header += '\n';
  WriteAll(p,
           std::string("\x93NUMPY\x01\x00\x76\x00", 10) + header + std::string(data_bytes, '\0'));
  try {
    ReadNpyF32(p);
    ADD_FAILURE() << "no FormatError for " << dict;
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(NpyTest, RejectsWhatItCannotRead) {
  ExpectBadHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", "'<f8'", 32);
  ExpectBadHeader("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", "'>f4'");
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", "fortran_order");
  ExpectBadHeader("{'descr': '<f4', 'shape': (2, 2), }", "lacks");
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "needs 24");
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", "holds 20", 20);
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2), }", "integer");
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 2], }", "unsupported");
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}",
                  "unsupported");
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)", "expected");
  ExpectBadHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 2), }",
                  "too large");
}

TEST(NpyTest, RejectsBadPreambles) {
  const fs::path dir = TempDir();
  const std::string good = NumpyFile2x2();
  const auto expect_format = [&](const std::string& bytes, const std::string& what) {
    WriteAll(dir / "p.npy", bytes);
    try {
      ReadNpyF32(dir / "p.npy");
      ADD_FAILURE() << "no FormatError; wanted " << what;
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find((dir / "p.npy").string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
  };
  expect_format("", "magic");
  expect_format("PK\x03\x04 not an npy file", "magic");
  expect_format(std::string("\x93NUMPY\x09\x00\x76\x00", 10) + good.substr(10), "version 9");
  expect_format(std::string("\x93NUMPY\x01\x00\xff\xff", 10) + good.substr(10), "past the end");
  expect_format(good.substr(0, 9), "truncated");

  ASSERT_THROW(ReadNpyF32(dir / "missing.npy"), IoError);
}

TEST(NpyTest, WriteChecksShapeAgainstData) {
  const fs::path p = TempDir() / "w.npy";
  const std::vector<float> four = {1, 2, 3, 4};
  EXPECT_THROW(WriteNpyF32(p, std::vector<int64_t>{2, 3}, four), ShapeError);
  EXPECT_THROW(WriteNpyF32(p, std::vector<int64_t>{-2, -2}, four), ShapeError);
  EXPECT_THROW(WriteNpyF32(p.parent_path() / "no" / "dir.npy", std::vector<int64_t>{4}, four),
               IoError);
  const std::vector<float> none;
  WriteNpyF32(p, std::vector<int64_t>{0, 3}, none);
  const NpyArray e = ReadNpyF32(p);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(e.data.empty());
}

}  // namespace
}  // namespace rwkv_embed

namespace rwkv_embed {
namespace {

TEST(NpyWriterTest, PiecewiseWritesInAnyOrderEqualOneWrite) {
  const auto dir = testing::TempDir();
  const std::vector<int64_t> shape = {2, 3};
  NpyF32Writer w(dir / "a.npy", shape);
  w.Write(3, std::vector<float>{4, 5, 6});
  w.Write(0, std::vector<float>{1, 2, 3});
  w.Close();
  const NpyArray got = ReadNpyF32(dir / "a.npy");
  EXPECT_EQ(got.shape, shape);
  EXPECT_EQ(got.data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(NpyWriterTest, RejectsOutOfRangeAndIncompleteWrites) {
  const auto dir = testing::TempDir();
  const std::vector<int64_t> shape = {2, 2};
  NpyF32Writer w(dir / "b.npy", shape);
  EXPECT_THROW(w.Write(3, std::vector<float>{1, 2}), ShapeError);
  w.Write(0, std::vector<float>{1, 2});
  EXPECT_THROW(w.Close(), ShapeError);  // only 2 of 4 elements written
}

}  // namespace
}  // namespace rwkv_embed
