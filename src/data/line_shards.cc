#include "data/line_shards.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace rwkv_embed {
namespace {

constexpr int64_t kReadBlock = int64_t{1} << 20;

std::ifstream OpenAt(const std::filesystem::path& path, int64_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open input " + path.string() + ": " + std::strerror(errno));
  in.seekg(offset);
  if (!in) throw IoError("cannot seek to byte " + std::to_string(offset) + " of " + path.string());
  return in;
}

// Offset just after the first '\n' at or after `from`, or file_size when there is none.
int64_t NextLineStart(const std::filesystem::path& path, int64_t from, int64_t file_size) {
  auto in = OpenAt(path, from);
  char buf[4096];
  int64_t pos = from;
  while (pos < file_size) {
    const auto want = static_cast<std::streamsize>(std::min<int64_t>(sizeof(buf), file_size - pos));
    in.read(buf, want);
    if (in.gcount() != want) throw IoError("error reading " + path.string() + " (file shrank?)");
    if (const void* nl = std::memchr(buf, '\n', static_cast<size_t>(want))) {
      return pos + (static_cast<const char*>(nl) - buf) + 1;
    }
    pos += want;
  }
  return file_size;
}

}  // namespace

int64_t DefaultShardBytes(double input_bytes, double ranks) {
  constexpr double kMin = 4096, kMax = 4 << 20;
  return static_cast<int64_t>(std::clamp(input_bytes / (16 * ranks), kMin, kMax));
}

std::vector<ByteRange> SplitAtLines(const std::filesystem::path& path, int64_t file_size,
                                    int64_t shard_bytes) {
  if (shard_bytes < 1) throw UsageError("shard size must be at least 1 byte");
  std::vector<ByteRange> ranges;
  int64_t begin = 0;
  while (begin < file_size) {
    // The cut lands after the '\n' that ends the line holding byte begin + shard_bytes - 1.
    const int64_t target = begin + std::min(shard_bytes, file_size - begin) - 1;
    const int64_t end = NextLineStart(path, target, file_size);
    ranges.push_back({begin, end});
    begin = end;
  }
  return ranges;
}

std::string ReadRange(const std::filesystem::path& path, ByteRange range) {
  auto in = OpenAt(path, range.begin);
  std::string text(static_cast<size_t>(range.end - range.begin), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.gcount() != static_cast<std::streamsize>(text.size())) {
    throw IoError("error reading bytes [" + std::to_string(range.begin) + ", " +
                  std::to_string(range.end) + ") of " + path.string() + " (file shrank?)");
  }
  return text;
}

int64_t CountLines(const std::filesystem::path& path, ByteRange range) {
  auto in = OpenAt(path, range.begin);
  std::vector<char> buf(static_cast<size_t>(std::min(kReadBlock, range.end - range.begin)));
  int64_t lines = 0;
  char last = '\n';
  for (int64_t pos = range.begin; pos < range.end;) {
    const auto want = static_cast<std::streamsize>(std::min<int64_t>(buf.size(), range.end - pos));
    in.read(buf.data(), want);
    if (in.gcount() != want) throw IoError("error reading " + path.string() + " (file shrank?)");
    lines += std::count(buf.data(), buf.data() + want, '\n');
    last = buf[static_cast<size_t>(want - 1)];
    pos += want;
  }
  return lines + (last != '\n' ? 1 : 0);
}

}  // namespace rwkv_embed
