// Fuzzes the GLUE MRPC / MSR paraphrase reader and the STS-B reader on the same bytes.
#include "pairs_fuzz_common.h"

using rwkv_embed::PairDataset;
using rwkv_embed::ReadOptions;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rwkv_embed::fuzz::TempInput input(".tsv");
  const std::filesystem::path& path = input.Write(rwkv_embed::fuzz::AsText(data, size));
  for (const bool lenient : {false, true}) {
    ReadOptions o;
    o.skip_malformed = lenient;
    o.allow_unlabelled = lenient;
    rwkv_embed::fuzz::ExpectOnlyLibraryErrors([&] {
      const PairDataset d = rwkv_embed::ReadMrpc(path, o);
      rwkv_embed::fuzz::CheckDataset(d, 0.0, 1.0);
      FUZZ_CHECK(!d.has_labels || d.binary, "MRPC labels are binary");
    });
    rwkv_embed::fuzz::ExpectOnlyLibraryErrors(
        [&] { rwkv_embed::fuzz::CheckDataset(rwkv_embed::ReadStsb(path, o), 0.0, 5.0); });
  }
  return 0;
}
