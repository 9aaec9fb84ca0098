// Fuzzes the generic CSV pair-file reader (ReadPairFile with PairFileFormat::kCsv).
#include "pairs_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rwkv_embed::fuzz::FuzzPairFile(data, size, rwkv_embed::PairFileFormat::kCsv, ".csv");
  return 0;
}
