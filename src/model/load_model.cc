#include "model/load_model.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/rwkv6/rwkv6.h"
#include "model/rwkv7/rwkv7.h"

namespace rwkv_embed {
namespace {

// config.json's model_type, if the folder has a config that names one.
std::optional<std::string> ConfigModelType(const std::filesystem::path& path) {
  if (!std::filesystem::is_directory(path)) return std::nullopt;
  const auto config = path / "config.json";
  if (!std::filesystem::exists(config)) return std::nullopt;
  std::ifstream in(config);
  if (!in) throw IoError("cannot open model config " + config.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(config.string() + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw FormatError(config.string() + ": expected a JSON object");
  if (!j.contains("model_type")) return std::nullopt;
  if (!j["model_type"].is_string()) {
    throw FormatError(config.string() + ": field 'model_type' must be a string");
  }
  return j["model_type"].get<std::string>();
}

}  // namespace

std::string_view ArchitectureName(Architecture a) {
  return a == Architecture::kRwkv7 ? "rwkv7" : "rwkv6";
}

Architecture DetectArchitecture(const TensorStore& store) {
  for (const char* name :
       {"blocks.0.att.k_k", "rwkv.blocks.0.att.k_k", "model.layers.0.attn.k_k"}) {
    if (store.Find(name)) return Architecture::kRwkv7;
  }
  for (const char* name : {"rwkv.blocks.0.attention.time_maa_x", "blocks.0.att.time_maa_x"}) {
    if (store.Find(name)) return Architecture::kRwkv6;
  }
  throw ShapeError("cannot tell the architecture of " + store.Describe() +
                   ": no RWKV-7 tensor (blocks.0.att.k_k, model.layers.0.attn.k_k) and no "
                   "RWKV-6 tensor (rwkv.blocks.0.attention.time_maa_x, blocks.0.att.time_maa_x)");
}

Architecture DetectArchitecture(const std::filesystem::path& path) {
  const std::optional<std::string> declared = ConfigModelType(path);
  if (declared && *declared != "rwkv6" && *declared != "rwkv7") {
    throw FormatError((path / "config.json").string() + ": model_type is \"" + *declared +
                      "\", rwkv-embed supports \"rwkv6\" and \"rwkv7\"");
  }
  const Architecture found = DetectArchitecture(OpenCheckpoint(path));
  if (declared && *declared != ArchitectureName(found)) {
    throw FormatError((path / "config.json").string() + ": model_type is \"" + *declared +
                      "\" but the tensors are " + std::string(ArchitectureName(found)) + "'s");
  }
  return found;
}

std::unique_ptr<SequenceModel> LoadModel(const std::filesystem::path& path,
                                         const LoadOptions& options) {
  switch (DetectArchitecture(path)) {
    case Architecture::kRwkv7:
      return std::make_unique<Rwkv7Model>(Rwkv7Weights::Load(path, options));
    case Architecture::kRwkv6:
      break;
  }
  return std::make_unique<Rwkv6Model>(Rwkv6Weights::Load(path, options));
}

}  // namespace rwkv_embed
