#include "bench/process.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace rwkv_embed::bench {
namespace {

// Value in bytes of a "Name:   <n> kB" line of /proc/self/status (proc(5): sizes are in kB).
int64_t StatusKb(std::string_view text, std::string_view field) {
  const std::string key = std::string(field) + ":";
  size_t pos = 0;
  while ((pos = text.find(key, pos)) != std::string_view::npos) {
    if (pos == 0 || text[pos - 1] == '\n') break;
    pos += key.size();
  }
  if (pos == std::string_view::npos) {
    throw FormatError("/proc status: no '" + std::string(field) + "' line");
  }
  size_t p = pos + key.size();
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) ++p;
  int64_t kb = -1;
  const auto [end, ec] = std::from_chars(text.data() + p, text.data() + text.size(), kb);
  const std::string_view rest = text.substr(end - text.data());
  if (ec != std::errc() || kb < 0 || !rest.starts_with(" kB")) {
    throw FormatError("/proc status: malformed '" + std::string(field) + "' line");
  }
  return kb * 1024;
}

}  // namespace

MemoryUsage ParseProcStatus(std::string_view status_text) {
  MemoryUsage m;
  m.rss_bytes = StatusKb(status_text, "VmRSS");
  m.peak_rss_bytes = StatusKb(status_text, "VmHWM");
  return m;
}

MemoryUsage ReadMemoryUsage() {
  std::ifstream in("/proc/self/status");
  if (!in) throw IoError("cannot read /proc/self/status");
  std::ostringstream text;
  text << in.rdbuf();
  return ParseProcStatus(text.str());
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("model name")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

}  // namespace rwkv_embed::bench
