#include "core/memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <system_error>

#include "core/error.h"

namespace rwkv_embed {

std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024.0 && unit < 6) {
    v /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %s", v, kUnits[unit]);
  return buf;
}

std::optional<uint64_t> AvailableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("MemAvailable:")) continue;
    std::istringstream fields(line.substr(13));
    uint64_t kib = 0;
    std::string unit;
    if (fields >> kib >> unit && unit == "kB") return CheckedMul(kib, 1024);
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<uint64_t> AvailableDiskBytes(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  if (ec) return std::nullopt;
  while (!std::filesystem::exists(p, ec)) {
    if (!p.has_relative_path()) return std::nullopt;
    p = p.parent_path();
  }
  const std::filesystem::space_info s = std::filesystem::space(p, ec);
  if (ec || s.available == static_cast<std::uintmax_t>(-1)) return std::nullopt;
  return s.available;
}

void RequireMemory(uint64_t bytes, std::string_view what) {
  const std::optional<uint64_t> available = AvailableMemoryBytes();
  if (available && bytes > *available) {
    throw UsageError(std::string(what) + " needs " + FormatBytes(bytes) + ", more than the " +
                     FormatBytes(*available) +
                     " of memory available (MemAvailable in /proc/meminfo)");
  }
}

void RequireDiskSpace(uint64_t bytes, const std::filesystem::path& path, std::string_view what) {
  const std::optional<uint64_t> available = AvailableDiskBytes(path);
  if (available && bytes > *available) {
    throw UsageError(std::string(what) + " needs " + FormatBytes(bytes) +
                     " of disk, more than the " + FormatBytes(*available) + " free at '" +
                     path.string() + "'");
  }
}

}  // namespace rwkv_embed
