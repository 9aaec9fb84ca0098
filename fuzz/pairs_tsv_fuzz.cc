// Fuzzes the generic TSV pair-file reader (ReadPairFile with PairFileFormat::kTsv).
#include "pairs_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rwkv_embed::fuzz::FuzzPairFile(data, size, rwkv_embed::PairFileFormat::kTsv, ".tsv");
  return 0;
}
