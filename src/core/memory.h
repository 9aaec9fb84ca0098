// Up-front size checks: whether a requested allocation or file fits before anything is allocated
// or written, so that an absurd option or header fails at once with a message naming it instead
// of growing for minutes and ending in std::bad_alloc or a full disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace rwkv_embed {

// a * b, or nullopt when the product does not fit in 64 bits.
std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b);
// a + b, or nullopt when the sum does not fit in 64 bits.
std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b);

// "512 B", "3.00 GiB", ... (binary units, three significant decimals).
std::string FormatBytes(uint64_t bytes);

// MemAvailable of /proc/meminfo (what the kernel can hand out without swapping), in bytes;
// nullopt where it cannot be read (not Linux).
std::optional<uint64_t> AvailableMemoryBytes();

// Free space for an unprivileged user on the file system that would hold `path` (its nearest
// existing ancestor when it does not exist yet); nullopt when that cannot be determined.
std::optional<uint64_t> AvailableDiskBytes(const std::filesystem::path& path);

// Throws UsageError "<what> needs N, more than the M of memory available ..." when `bytes`
// exceed AvailableMemoryBytes(). Does nothing when the available memory is unknown.
void RequireMemory(uint64_t bytes, std::string_view what);

// Same for disk space at `path` (AvailableDiskBytes).
void RequireDiskSpace(uint64_t bytes, const std::filesystem::path& path, std::string_view what);

}  // namespace rwkv_embed
