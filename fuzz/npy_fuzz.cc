// Fuzzes .npy reading (ReadNpyF32): header dict, versions 1-3, shape against the data size.
#include "fuzz_util.h"
#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rwkv_embed::fuzz::TempInput input(".npy");
  const std::filesystem::path& path = input.Write(rwkv_embed::fuzz::AsText(data, size));
  rwkv_embed::fuzz::ExpectOnlyLibraryErrors([&] {
    const rwkv_embed::NpyArray a = rwkv_embed::ReadNpyF32(path);
    size_t numel = 1;
    for (int64_t d : a.shape) {
      FUZZ_CHECK(d >= 0, "dimensions are non-negative");
      numel *= static_cast<size_t>(d);
    }
    FUZZ_CHECK(a.data.size() == numel, "data holds exactly the shape's elements");
    FUZZ_CHECK(a.data.size() * sizeof(float) < size, "data comes from the file");
  });
  return 0;
}
