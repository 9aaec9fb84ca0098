// Fuzzes the .pth reader: zip records (end of central directory, zip64, local headers), the
// restricted pickle (opcodes, globals, memo, persistent ids) and the storages' byte ranges.
// ParsePthForFuzzing touches both ends of every tensor view, so an escaped range is a sanitizer
// report; a rwkv_embed::Error is the expected answer to bad input.
#include <cstddef>
#include <cstdint>

#include "io/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rwkv_embed::ParsePthForFuzzing({data, size});
  return 0;
}
