#include "io/zip.h"

#include <algorithm>
#include <array>
#include <set>

#include "core/error.h"

namespace rwkv_embed {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64EndSize = 56;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kFlagEncrypted = 0x0001;

[[noreturn]] void Fail(const std::filesystem::path& file, const std::string& what) {
  throw FormatError("zip archive '" + file.string() + "': " + what);
}

// Little-endian unsigned integer of `n` bytes at `pos`; the caller has checked the bounds.
uint64_t Le(std::span<const std::byte> b, size_t pos, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b[pos + i]) << (8 * i);
  return v;
}

// Whether [pos, pos + n) lies inside a buffer of `size` bytes, without overflow.
bool InRange(uint64_t pos, uint64_t n, uint64_t size) { return pos <= size && n <= size - pos; }

struct Directory {
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
  uint64_t end = 0;  // where the directory must end: the first end record
};

size_t FindEndRecord(std::span<const std::byte> b, const std::filesystem::path& file) {
  if (b.size() < kEndSize) {
    Fail(file, "file is " + std::to_string(b.size()) +
                   " bytes, too short for an end-of-central-directory record (truncated?)");
  }
  // The record is followed only by its comment (at most 65535 bytes); scan back for it.
  const size_t last = b.size() - kEndSize;
  const size_t first = last > 65535 ? last - 65535 : 0;
  for (size_t pos = last + 1; pos-- > first;) {
    if (Le(b, pos, 4) == kEndSig && pos + kEndSize + Le(b, pos + 20, 2) == b.size()) return pos;
  }
  Fail(file, "no end-of-central-directory record (truncated or not a zip archive)");
}

Directory ReadZip64End(std::span<const std::byte> b, size_t locator,
                       const std::filesystem::path& file) {
  if (Le(b, locator + 4, 4) != 0 || Le(b, locator + 16, 4) > 1) {
    Fail(file, "multi-disk archives are not supported");
  }
  const uint64_t pos = Le(b, locator + 8, 8);
  if (!InRange(pos, kZip64EndSize, locator) || Le(b, pos, 4) != kZip64EndSig) {
    Fail(file, "zip64 end record offset " + std::to_string(pos) + " does not point at one");
  }
  if (Le(b, pos + 16, 4) != 0 || Le(b, pos + 20, 4) != 0) {
    Fail(file, "multi-disk archives are not supported");
  }
  return {Le(b, pos + 32, 8), Le(b, pos + 40, 8), Le(b, pos + 48, 8), pos};
}

Directory ReadDirectoryLocation(std::span<const std::byte> b, const std::filesystem::path& file) {
  const size_t end = FindEndRecord(b, file);
  Directory d;
  if (end >= kZip64LocatorSize && Le(b, end - kZip64LocatorSize, 4) == kZip64LocatorSig) {
    d = ReadZip64End(b, end - kZip64LocatorSize, file);
  } else {
    if (Le(b, end + 4, 2) != 0 || Le(b, end + 6, 2) != 0) {
      Fail(file, "multi-disk archives are not supported");
    }
    d = {Le(b, end + 10, 2), Le(b, end + 12, 4), Le(b, end + 16, 4), end};
  }
  if (!InRange(d.offset, d.size, d.end)) {
    Fail(file, "central directory (offset " + std::to_string(d.offset) + ", " +
                   std::to_string(d.size) + " bytes) lies outside the archive (truncated?)");
  }
  if (d.entries > d.size / kCentralHeaderSize) {
    Fail(file, "central directory of " + std::to_string(d.size) + " bytes cannot hold " +
                   std::to_string(d.entries) + " entries");
  }
  return d;
}

// Replaces the 32-bit fields saturated at 0xFFFFFFFF by their values in the zip64 extra field.
void ApplyZip64Extra(std::span<const std::byte> extra, ZipEntry& e,
                     const std::filesystem::path& file) {
  constexpr uint64_t kSaturated = 0xFFFFFFFF;
  for (size_t pos = 0; pos + 4 <= extra.size();) {
    const uint64_t id = Le(extra, pos, 2), len = Le(extra, pos + 2, 2);
    if (!InRange(pos + 4, len, extra.size())) break;
    if (id == kZip64ExtraId) {
      size_t at = pos + 4;
      for (uint64_t* field : {&e.size, &e.compressed_size, &e.local_header_offset}) {
        if (*field != kSaturated) continue;
        if (at + 8 > pos + 4 + len) Fail(file, "entry '" + e.name + "': zip64 field too short");
        *field = Le(extra, at, 8);
        at += 8;
      }
      return;
    }
    pos += 4 + len;
  }
  if (e.size == kSaturated || e.compressed_size == kSaturated ||
      e.local_header_offset == kSaturated) {
    Fail(file, "entry '" + e.name + "' needs a zip64 extra field and has none");
  }
}

// One central directory header at `pos` (inside the directory); advances `pos` past it.
ZipEntry ReadCentralHeader(std::span<const std::byte> dir, size_t& pos,
                           const std::filesystem::path& file, uint64_t dir_offset) {
  const std::string where = "central directory header at byte " + std::to_string(dir_offset + pos);
  if (!InRange(pos, kCentralHeaderSize, dir.size()) || Le(dir, pos, 4) != kCentralHeaderSig) {
    Fail(file, where + " is missing or corrupt");
  }
  const size_t name_len = Le(dir, pos + 28, 2), extra_len = Le(dir, pos + 30, 2);
  const size_t comment_len = Le(dir, pos + 32, 2);
  if (!InRange(pos + kCentralHeaderSize, name_len + extra_len + comment_len, dir.size())) {
    Fail(file, where + " runs past the end of the directory");
  }
  if (Le(dir, pos + 34, 2) != 0) Fail(file, where + ": multi-disk archives are not supported");
  ZipEntry e;
  e.flags = static_cast<uint16_t>(Le(dir, pos + 8, 2));
  e.method = static_cast<uint16_t>(Le(dir, pos + 10, 2));
  e.crc32 = static_cast<uint32_t>(Le(dir, pos + 16, 4));
  e.compressed_size = Le(dir, pos + 20, 4);
  e.size = Le(dir, pos + 24, 4);
  e.local_header_offset = Le(dir, pos + 42, 4);
  const auto* name = reinterpret_cast<const char*>(dir.data() + pos + kCentralHeaderSize);
  e.name.assign(name, name_len);
  ApplyZip64Extra(dir.subspan(pos + kCentralHeaderSize + name_len, extra_len), e, file);
  pos += kCentralHeaderSize + name_len + extra_len + comment_len;
  return e;
}

}  // namespace

bool HasZipMagic(std::span<const std::byte> bytes) {
  return bytes.size() >= 4 && Le(bytes, 0, 4) == kLocalHeaderSig;
}

uint32_t Crc32(std::span<const std::byte> bytes) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (std::byte b : bytes) c = kTable[(c ^ static_cast<uint8_t>(b)) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

ZipArchive ZipArchive::Parse(std::span<const std::byte> bytes, const std::filesystem::path& file) {
  ZipArchive z;
  z.bytes_ = bytes;
  z.file_ = file;
  const Directory d = ReadDirectoryLocation(bytes, file);
  const std::span<const std::byte> dir = bytes.subspan(d.offset, d.size);
  std::set<std::string_view> names;
  size_t pos = 0;
  z.entries_.reserve(d.entries);
  for (uint64_t i = 0; i < d.entries; ++i) {
    z.entries_.push_back(ReadCentralHeader(dir, pos, file, d.offset));
  }
  for (const ZipEntry& e : z.entries_) {
    if (!names.insert(e.name).second) Fail(file, "entry '" + e.name + "' appears twice");
  }
  return z;
}

const ZipEntry* ZipArchive::Find(std::string_view name) const {
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [name](const ZipEntry& e) { return e.name == name; });
  return it == entries_.end() ? nullptr : &*it;
}

std::span<const std::byte> ZipArchive::Read(const ZipEntry& e, bool verify_crc) const {
  const std::string entry = "entry '" + e.name + "'";
  if (e.flags & kFlagEncrypted) Fail(file_, entry + " is encrypted");
  if (e.method != 0) {
    Fail(file_, entry + " is compressed (method " + std::to_string(e.method) +
                    "); only stored entries are supported, as torch.save writes them");
  }
  if (e.compressed_size != e.size) {
    Fail(file_, entry + " is stored but its sizes differ (" + std::to_string(e.compressed_size) +
                    " vs " + std::to_string(e.size) + ")");
  }
  const uint64_t lh = e.local_header_offset;
  if (!InRange(lh, kLocalHeaderSize, bytes_.size()) || Le(bytes_, lh, 4) != kLocalHeaderSig) {
    Fail(file_, entry + ": no local header at byte " + std::to_string(lh));
  }
  const uint64_t name_len = Le(bytes_, lh + 26, 2), extra_len = Le(bytes_, lh + 28, 2);
  const uint64_t data = lh + kLocalHeaderSize + name_len + extra_len;
  if (!InRange(lh + kLocalHeaderSize, name_len, bytes_.size()) ||
      std::string_view(reinterpret_cast<const char*>(bytes_.data() + lh + kLocalHeaderSize),
                       name_len) != e.name) {
    Fail(file_, entry + ": local header at byte " + std::to_string(lh) + " names another entry");
  }
  if (!InRange(data, e.size, bytes_.size())) {
    Fail(file_, entry + " (" + std::to_string(e.size) + " bytes at byte " + std::to_string(data) +
                    ") runs past the end of the archive (" + std::to_string(bytes_.size()) +
                    " bytes; truncated?)");
  }
  const std::span<const std::byte> out = bytes_.subspan(data, e.size);
  if (verify_crc && Crc32(out) != e.crc32) Fail(file_, entry + " fails its CRC-32 check");
  return out;
}

}  // namespace rwkv_embed
