// Fuzzes the safetensors header and tensor table (SafetensorsFile::Open, which TensorStore::Open
// runs on every file and shard) and the dtype conversions over whatever tensors a header admits.
#include <cstring>

#include "fuzz_util.h"
#include "io/safetensors.h"

using rwkv_embed::DTypeSize;
using rwkv_embed::FindNonFinite;
using rwkv_embed::SafetensorsFile;
using rwkv_embed::TensorView;
using rwkv_embed::ToFloat32;

namespace {

// The data region a well-formed input declares (8-byte length, header, data).
size_t DataRegionBytes(const uint8_t* data, size_t size) {
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  return size - 8 - static_cast<size_t>(header_len);
}

void CheckTensor(const SafetensorsFile& file, const TensorView& t) {
  FUZZ_CHECK(file.Find(t.name) == &t, "Find returns every listed tensor");
  const int64_t numel = t.numel();
  FUZZ_CHECK(numel >= 0, t.name.c_str());
  FUZZ_CHECK(static_cast<uint64_t>(numel) * DTypeSize(t.dtype) == t.bytes.size(),
             "byte length matches shape x dtype");
  // The mapping is not ASan-tracked, so reading every element here is what would fault on a
  // tensor that extends past the file; UBSan checks the loads' alignment.
  FUZZ_CHECK(ToFloat32(t).size() == static_cast<size_t>(numel), t.name.c_str());
  const std::optional<int64_t> bad = FindNonFinite(t);
  FUZZ_CHECK(!bad || (*bad >= 0 && *bad < numel), t.name.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rwkv_embed::fuzz::TempInput input(".safetensors");
  const std::filesystem::path& path = input.Write(rwkv_embed::fuzz::AsText(data, size));
  rwkv_embed::fuzz::ExpectOnlyLibraryErrors([&] {
    const SafetensorsFile file = SafetensorsFile::Open(path);
    size_t total = 0;
    for (const TensorView& t : file.tensors()) {
      CheckTensor(file, t);
      total += t.bytes.size();
    }
    FUZZ_CHECK(total <= DataRegionBytes(data, size), "tensors fit in the data region");
  });
  return 0;
}
