// Wall-clock helpers shared by the runners, reports and benchmarks.
#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace rwkv_embed {

// Seconds of steady-clock time since t0.
inline double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The current time as ISO 8601 UTC, e.g. "2026-11-29T21:59:22Z" (JSON "started_at" fields).
inline std::string UtcNow() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace rwkv_embed
