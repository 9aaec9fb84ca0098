// A reader for the uncompressed ("stored") zip archives that torch.save writes: end-of-central-
// directory record (zip64 when present), central directory, local headers. Entries are returned
// as spans into the caller's bytes (a memory mapping), never copied. Deflated or encrypted entries
// are listed but cannot be read (FormatError naming the entry).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace rwkv_embed {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 = stored; anything else is compressed
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t local_header_offset = 0;
};

// "PK\x03\x04": the first local file header of a non-empty zip archive.
bool HasZipMagic(std::span<const std::byte> bytes);

// The standard (IEEE 802.3, zlib) CRC-32 of `bytes`.
uint32_t Crc32(std::span<const std::byte> bytes);

class ZipArchive {
 public:
  // Parses the directory of the archive held in `bytes`; `file` only names it in messages.
  // Throws FormatError naming the file and the record at fault. `bytes` must outlive the archive.
  static ZipArchive Parse(std::span<const std::byte> bytes, const std::filesystem::path& file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* Find(std::string_view name) const;

  // The bytes of a stored entry, checked against the archive's size (and its local header). With
  // `verify_crc` the CRC-32 is checked too (this reads every byte). FormatError for compressed or
  // encrypted entries and for entries outside the archive.
  std::span<const std::byte> Read(const ZipEntry& entry, bool verify_crc) const;

 private:
  std::span<const std::byte> bytes_;
  std::filesystem::path file_;
  std::vector<ZipEntry> entries_;  // central directory order
};

}  // namespace rwkv_embed
