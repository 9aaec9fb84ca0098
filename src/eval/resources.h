// Process resource probes for the per-method cost measurements of the evaluation (issue 3, item 5):
// peak resident set size from Linux's /proc/self/status and its reset through
// /proc/self/clear_refs, so each method's peak is measured on its own.
#pragma once

#include <cstdint>

namespace rwkv_embed::eval {

// VmHWM ("high water mark" of the resident set) in KiB, or -1 where /proc is unavailable.
int64_t PeakRssKib();

// VmRSS (current resident set) in KiB, or -1 where /proc is unavailable.
int64_t CurrentRssKib();

// Returns freed heap to the OS (malloc_trim) and resets VmHWM to the current RSS by writing "5" to
// /proc/self/clear_refs (proc(5), Linux >= 4.0). Returns false when the reset is impossible; peaks
// measured afterwards then include earlier methods and reports must say so.
bool ResetPeakRss();

}  // namespace rwkv_embed::eval
