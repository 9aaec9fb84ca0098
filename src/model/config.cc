#include "model/config.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/utf8.h"

namespace rwkv_embed {
namespace {

int64_t RequireInt(const nlohmann::json& j, const char* field, const std::filesystem::path& path) {
  if (!j.contains(field) || !j[field].is_number_integer() || j[field].get<int64_t>() <= 0) {
    throw FormatError(path.string() + ": field '" + field + "' must be a positive integer");
  }
  return j[field].get<int64_t>();
}

int64_t OptionalInt(const nlohmann::json& j, const char* field, int64_t fallback,
                    const std::filesystem::path& path) {
  if (!j.contains(field) || j[field].is_null()) return fallback;
  return RequireInt(j, field, path);
}

}  // namespace

ModelConfig ModelConfig::FromJsonFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot open model config " + path.string());
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
  ModelConfig c;
  c.vocab_size = RequireInt(j, "vocab_size", path);
  c.hidden_size = RequireInt(j, "hidden_size", path);
  c.num_layers = RequireInt(j, "num_hidden_layers", path);
  c.attention_hidden_size = OptionalInt(j, "attention_hidden_size", c.hidden_size, path);
  c.head_size = OptionalInt(j, "head_size", 64, path);
  c.intermediate_size =
      OptionalInt(j, "intermediate_size", DefaultIntermediateSize(c.hidden_size), path);
  c.head_size_divisor = OptionalInt(j, "head_size_divisor", 8, path);
  c.rescale_every = j.contains("rescale_every") && j["rescale_every"].is_number_integer()
                        ? j["rescale_every"].get<int64_t>()
                        : 6;
  if (j.contains("layer_norm_epsilon")) {
    if (!j["layer_norm_epsilon"].is_number() || j["layer_norm_epsilon"].get<double>() <= 0) {
      throw FormatError(path.string() + ": field 'layer_norm_epsilon' must be a positive number");
    }
    c.layer_norm_epsilon = j["layer_norm_epsilon"].get<double>();
  }
  if (j.contains("rwkv_embed_random_weights")) {  // j.value() would throw json::type_error
    if (!j["rwkv_embed_random_weights"].is_boolean()) {
      throw FormatError(path.string() +
                        ": field 'rwkv_embed_random_weights' must be true or false");
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

nlohmann::json ModelConfig::ToJson() const {
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
