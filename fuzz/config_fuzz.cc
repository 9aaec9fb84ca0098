// Fuzzes config.json parsing (ModelConfig::FromJsonFile) and the values derived from it; a
// config that parses must survive ToJson() -> FromJsonFile() unchanged.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "model/rwkv6/rwkv6_config.h"

using rwkv_embed::ModelConfig;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rwkv_embed::fuzz::TempInput input(".json");
  static rwkv_embed::fuzz::TempInput round_trip("-roundtrip.json");
  const std::filesystem::path& path = input.Write(rwkv_embed::fuzz::AsText(data, size));
  rwkv_embed::fuzz::ExpectOnlyLibraryErrors([&] {
    const ModelConfig c = ModelConfig::FromJsonFile(path);
    FUZZ_CHECK(c.num_heads() > 0, "a parsed config has heads");
    FUZZ_CHECK(c.group_norm_epsilon() > 0, "GroupNorm epsilon is positive");
    FUZZ_CHECK(c.num_hidden_layers_with_ends() >= 3, "at least one block");
    const ModelConfig again = ModelConfig::FromJsonFile(round_trip.Write(c.ToJson().dump()));
    FUZZ_CHECK(again.ToJson() == c.ToJson(), "ToJson/FromJsonFile round trip");
  });
  return 0;
}
