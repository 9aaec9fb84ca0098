#include "eval/resources.h"

#include <malloc.h>

#include <fstream>
#include <string>

namespace rwkv_embed::eval {
namespace {

// The value of a "Key:   1234 kB" line of /proc/self/status, or -1.
int64_t StatusFieldKib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    try {
      return std::stoll(line.substr(key.size() + 1));
    } catch (const std::exception&) {
      return -1;
    }
  }
  return -1;
}

}  // namespace

int64_t PeakRssKib() { return StatusFieldKib("VmHWM"); }
int64_t CurrentRssKib() { return StatusFieldKib("VmRSS"); }

bool ResetPeakRss() {
  malloc_trim(0);
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace rwkv_embed::eval
