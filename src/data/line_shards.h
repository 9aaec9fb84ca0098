// A text file of one sentence per line cut into shards: byte ranges that start and end at line
// boundaries, found by reading only a few bytes around each cut (no process reads the whole file
// to plan). The MPI embed (apps/mpi) hands these out to ranks; a shard's sentences are its lines,
// read with the same rules as `embed` (ReadSentenceLines), numbered from the shard's first line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rwkv_embed {

struct ByteRange {
  int64_t begin = 0, end = 0;  // [begin, end)
  bool operator==(const ByteRange&) const = default;
};

// Cuts [0, file_size) into ranges of about `shard_bytes` each: every cut is moved forward to just
// after the next '\n', so no line is split; ranges are non-empty and cover the file in order (a
// line longer than shard_bytes makes one longer range). Throws IoError naming the path.
std::vector<ByteRange> SplitAtLines(const std::filesystem::path& path, int64_t file_size,
                                    int64_t shard_bytes);

// The shard size rwkv-embed-mpi takes when --shard-bytes is not given, for an input of
// `input_bytes` over `ranks` ranks: about 16 shards a rank (a slow rank then holds the job back by
// at most one small shard), within 4 KiB .. 4 MiB (a shard's lines are read whole into memory).
// bench --mpi's cluster model uses it for the size of the tail.
int64_t DefaultShardBytes(double input_bytes, double ranks);

// The bytes of `range`. Throws IoError naming the path (also when the file is shorter).
std::string ReadRange(const std::filesystem::path& path, ByteRange range);

// The number of lines in `range` as std::getline counts them: one per '\n', plus one when the
// range ends in a line without '\n' (the file's last line). Throws IoError naming the path.
int64_t CountLines(const std::filesystem::path& path, ByteRange range);

}  // namespace rwkv_embed
