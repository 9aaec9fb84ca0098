// What this binary was built from (generated at build time by cmake/build_info.cmake).
#pragma once

#include <string_view>

namespace rwkv_embed {

// The git commit of the source tree (12 hex digits, "-dirty" with uncommitted changes to tracked
// files), or "unknown" outside a git checkout.
std::string_view BuildCommit();

}  // namespace rwkv_embed
