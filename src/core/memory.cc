#include "core/memory.h"

#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "core/error.h"

namespace rwkv_embed {
namespace {

std::string GiB(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

}  // namespace

std::optional<int64_t> AvailableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t value = 0;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return SaturatingMul(value, 1024);  // the file counts kB
  }
  return std::nullopt;
}

void CheckFitsInMemory(int64_t bytes, std::string_view what) {
  const std::optional<int64_t> available = AvailableMemoryBytes();
  if (available && bytes > *available) {
    throw UsageError(std::string(what) + " needs about " + GiB(bytes) +
                     " GiB of memory, but only " + GiB(*available) + " GiB is available");
  }
}

int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t product = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &product)) {
    return std::numeric_limits<int64_t>::max();
  }
  return product;
}

}  // namespace rwkv_embed
