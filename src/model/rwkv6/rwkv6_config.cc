#include "model/rwkv6/rwkv6_config.h"

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/utf8.h"

namespace rwkv_embed {
namespace {

constexpr uintmax_t kMaxConfigBytes = 16u << 20;

[[noreturn]] void FailField(const std::filesystem::path& path, const char* field,
                            const std::string& what) {
  throw FormatError(path.string() + ": field '" + field + "' " + what);
}

int64_t RequireInt(const nlohmann::json& j, const char* field, const std::filesystem::path& path,
                   int64_t max) {
  const std::string range = "must be an integer in 1.." + std::to_string(max);
  if (!j.contains(field)) FailField(path, field, "is missing (it " + range + ")");
  const nlohmann::json& v = j[field];
  // An unsigned value above INT64_MAX is not a number_integer that fits: test before get<>.
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(max)) ||
      v.get<int64_t>() < 1 || v.get<int64_t>() > max) {
    FailField(path, field, range + ", got " + v.dump());
  }
  return v.get<int64_t>();
}

int64_t OptionalInt(const nlohmann::json& j, const char* field, int64_t fallback,
                    const std::filesystem::path& path, int64_t max) {
  if (!j.contains(field) || j[field].is_null()) return fallback;
  return RequireInt(j, field, path, max);
}

}  // namespace

Rwkv6Config Rwkv6Config::FromJsonFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot open model config " + path.string());
  // Parsed whole: bound it first (a real config.json is about 1 KB; a device or a huge file is
  // not one).
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError("cannot read model config " + path.string() + ": " + ec.message());
  if (size > kMaxConfigBytes) {
    throw FormatError(path.string() + ": " + std::to_string(size) +
                      " bytes, too large for a model config (at most " +
                      std::to_string(kMaxConfigBytes) + ")");
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string() + ": invalid JSON: " + EscapeForMessage(e.what()));
  }
  if (!j.is_object()) throw FormatError(path.string() + ": expected a JSON object");
  if (j.contains("model_type") && j["model_type"] != "rwkv6") {
    throw FormatError(path.string() + ": model_type is " + j["model_type"].dump() +
                      ", rwkv-embed supports \"rwkv6\"");
  }
  Rwkv6Config c;
  c.vocab_size = RequireInt(j, "vocab_size", path, kMaxConfigVocab);
  c.hidden_size = RequireInt(j, "hidden_size", path, kMaxConfigDim);
  c.num_layers = RequireInt(j, "num_hidden_layers", path, kMaxConfigLayers);
  c.attention_hidden_size =
      OptionalInt(j, "attention_hidden_size", c.hidden_size, path, kMaxConfigDim);
  c.head_size = OptionalInt(j, "head_size", 64, path, kMaxConfigDim);
  c.intermediate_size = OptionalInt(j, "intermediate_size", DefaultIntermediateSize(c.hidden_size),
                                    path, kMaxConfigDim);
  c.head_size_divisor = OptionalInt(j, "head_size_divisor", 8, path, kMaxHeadSizeDivisor);
  // 0 is HF's "never rescale" (rwkv-embed never rescales; the field is only reported).
  if (j.contains("rescale_every") && !j["rescale_every"].is_null()) {
    const nlohmann::json& v = j["rescale_every"];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) {
      FailField(path, "rescale_every", "must be a non-negative integer, got " + v.dump());
    }
    c.rescale_every = v.get<int64_t>();
  }
  if (j.contains("layer_norm_epsilon")) {
    const nlohmann::json& eps = j["layer_norm_epsilon"];
    if (!eps.is_number() || !(eps.get<double>() > 0) || !(eps.get<double>() < 1)) {
      FailField(path, "layer_norm_epsilon", "must be a number in (0, 1), got " + eps.dump());
    }
    c.layer_norm_epsilon = eps.get<double>();
  }
  if (j.contains("rwkv_embed_random_weights")) {
    if (!j["rwkv_embed_random_weights"].is_boolean()) {
      FailField(path, "rwkv_embed_random_weights", "must be true or false");
    }
    c.random_weights = j["rwkv_embed_random_weights"].get<bool>();
  }
  if (c.attention_hidden_size % c.head_size != 0) {
    throw FormatError(path.string() + ": attention_hidden_size " +
                      std::to_string(c.attention_hidden_size) + " is not a multiple of head_size " +
                      std::to_string(c.head_size));
  }
  return c;
}

nlohmann::json Rwkv6Config::ToJson() const {
  nlohmann::json j = {
      {"architectures", {"Rwkv6ForCausalLM"}},
      {"model_type", "rwkv6"},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_layers},
      {"attention_hidden_size", attention_hidden_size},
      {"head_size", head_size},
      {"head_size_divisor", head_size_divisor},
      {"intermediate_size", intermediate_size},
      {"layer_norm_epsilon", layer_norm_epsilon},
      {"rescale_every", rescale_every},
      {"tie_word_embeddings", false},
      {"bos_token_id", 0},
      {"eos_token_id", 0},
      {"use_cache", true},
      {"num_attention_heads", num_heads()},
  };
  if (random_weights) j["rwkv_embed_random_weights"] = true;
  return j;
}

}  // namespace rwkv_embed
