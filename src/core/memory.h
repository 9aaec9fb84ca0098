// Up-front memory checks: a size asked for on the command line is compared with the memory the
// kernel says is available before anything is allocated, so that a typo like `--lengths 1e11`
// fails at once with a message naming the option instead of std::bad_alloc (or swapping) later.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace rwkv_embed {

// MemAvailable of /proc/meminfo in bytes (the kernel's estimate of what can be allocated without
// swapping); nullopt where it cannot be read.
std::optional<int64_t> AvailableMemoryBytes();

// Throws UsageError "<what> needs about X GiB of memory, but only Y GiB is available" when
// `bytes` exceeds AvailableMemoryBytes(); does nothing when that is unknown. `what` names the
// option and value that asked for it.
void CheckFitsInMemory(int64_t bytes, std::string_view what);

// a * b for non-negative sizes, saturating at INT64_MAX (a size that large never fits anyway).
int64_t SaturatingMul(int64_t a, int64_t b);

}  // namespace rwkv_embed
