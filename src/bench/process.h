// What the benchmark reads about its own process and machine from Linux /proc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rwkv_embed::bench {

struct MemoryUsage {
  int64_t rss_bytes = 0;       // VmRSS: resident now (anonymous + file-backed, e.g. mapped weights)
  int64_t peak_rss_bytes = 0;  // VmHWM: the high-water mark of VmRSS
};

// Parses the VmRSS and VmHWM lines ("VmHWM:\t  123456 kB") of a /proc/<pid>/status text.
// FormatError naming the field when either is missing or malformed.
MemoryUsage ParseProcStatus(std::string_view status_text);

// This process's memory usage from /proc/self/status (IoError when it cannot be read).
MemoryUsage ReadMemoryUsage();

// The "model name" of the first processor in /proc/cpuinfo, or "unknown".
std::string CpuModelName();

}  // namespace rwkv_embed::bench
