#include "serve/protocol.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/utf8.h"

namespace rwkv_embed::serve {
namespace {

using nlohmann::json;

// Parses a request body: invalid UTF-8 is 422 (the issue's rule for bad text), anything else that
// is not a JSON object is 400.
json ParseObject(std::string_view body) {
  const size_t bad = FindInvalidUtf8(body);
  if (bad != body.size()) {
    throw Unprocessable("request body is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw BadRequest("request body is not valid JSON: " + EscapeForMessage(e.what(), 200));
  }
  if (!j.is_object()) throw BadRequest("request body must be a JSON object");
  return j;
}

std::string TypeName(const json& v) { return v.type_name(); }

// An integer field; 400 for any other type (1.0 included), saturated beyond int64.
int64_t AsInteger(const json& v, const std::string& field) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? std::numeric_limits<int64_t>::max()
               : static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  // nlohmann reads an integer literal beyond uint64 as a double: still an integer, out of range.
  if (v.is_number_float() && std::fabs(v.get<double>()) >= 0x1p63 &&
      std::trunc(v.get<double>()) == v.get<double>()) {
    return v.get<double>() > 0 ? std::numeric_limits<int64_t>::max()
                               : std::numeric_limits<int64_t>::min();
  }
  throw BadRequest("'" + field + "' must be an integer, got " + TypeName(v));
}

bool AsBool(const json& v, const std::string& field) {
  if (!v.is_boolean()) throw BadRequest("'" + field + "' must be a boolean, got " + TypeName(v));
  return v.get<bool>();
}

const std::string& AsString(const json& v, const std::string& field) {
  if (!v.is_string()) throw BadRequest("'" + field + "' must be a string, got " + TypeName(v));
  return v.get_ref<const std::string&>();
}

// A present, non-null field, or nullptr.
const json* Field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

// Library parsers throw UsageError for a bad value: a 422 naming the field.
template <class F>
auto Validated(const std::string& field, F&& parse) {
  try {
    return parse();
  } catch (const UsageError& e) {
    throw Unprocessable("'" + field + "': " + e.what());
  }
}

// "layers": a spec string as `embed --layers` takes ("final", "1,3", "0-4"), or an array of layer
// numbers (our numbering).
std::vector<int> ParseLayers(const json& v, const ServeConfig& config) {
  if (v.is_string()) {
    return Validated("layers",
                     [&] { return ParseLayerSpec(v.get<std::string>(), config.numbering); });
  }
  if (!v.is_array()) {
    throw BadRequest("'layers' must be a string or an array of integers, got " + TypeName(v));
  }
  if (v.empty()) throw Unprocessable("'layers' is empty");
  std::vector<int> layers;
  for (const json& item : v) {
    const int64_t l = AsInteger(item, "layers");
    if (l < 0 || l > config.numbering.last()) {
      throw Unprocessable("'layers': layer " + std::to_string(l) + " out of range 0.." +
                          std::to_string(config.numbering.last()));
    }
    for (int seen : layers) {
      if (seen == l) throw Unprocessable("'layers': layer " + std::to_string(l) + " given twice");
    }
    layers.push_back(static_cast<int>(l));
  }
  return layers;
}

Normalization ParseNormalizeField(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? Normalization::kL2 : Normalization::kNone;
  if (!v.is_string()) {
    throw BadRequest("'normalize' must be \"l2\", \"none\" or a boolean, got " + TypeName(v));
  }
  return Validated("normalize", [&] { return ParseNormalization(v.get<std::string>()); });
}

// The fields both embedding routes share: layers, pooling, normalize, truncate.
void ParseCommonOptions(const json& body, const ServeConfig& config, EmbeddingsRequest& r) {
  r.options = {config.layers, config.pooling, config.normalization};
  if (const json* v = Field(body, "layers")) r.options.layers = ParseLayers(*v, config);
  if (const json* v = Field(body, "pooling")) {
    const std::string& name = AsString(*v, "pooling");
    r.options.pooling = Validated("pooling", [&] { return ParsePooling(name); });
  }
  if (const json* v = Field(body, "normalize")) r.options.normalization = ParseNormalizeField(*v);
  if (const json* v = Field(body, "truncate")) r.truncate = AsBool(*v, "truncate");
}

void CheckText(const std::string& text, size_t index) {
  if (text.empty()) {
    throw Unprocessable("input[" + std::to_string(index) + "] is an empty string");
  }
}

// A string or an array of strings ("input" / "inputs").
std::vector<std::string> ParseTexts(const json& v, const std::string& field,
                                    const ServeConfig& config) {
  std::vector<std::string> texts;
  if (v.is_string()) {
    texts.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.empty()) throw Unprocessable("'" + field + "' is an empty array");
    for (const json& item : v) texts.push_back(AsString(item, field + "[]"));
  } else {
    throw BadRequest("'" + field + "' must be a string or an array of strings, got " + TypeName(v));
  }
  if (static_cast<int64_t>(texts.size()) > config.max_inputs) {
    throw Unprocessable("'" + field + "' has " + std::to_string(texts.size()) +
                        " inputs; at most " + std::to_string(config.max_inputs) + " per request");
  }
  for (size_t i = 0; i < texts.size(); ++i) CheckText(texts[i], i);
  return texts;
}

std::vector<int32_t> ParseTokenArray(const json& v, size_t index, const ServeConfig& config) {
  const std::string where = "input[" + std::to_string(index) + "]";
  if (v.empty()) throw Unprocessable(where + " is an empty token array");
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const json& item : v) {
    const int64_t id = AsInteger(item, "input");
    if (id < 0 || id >= config.vocab_size) {
      throw Unprocessable(where + ": token id " + std::to_string(id) +
                          " outside the vocabulary 0.." + std::to_string(config.vocab_size - 1));
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

// OpenAI "input": a string, an array of strings, an array of token ids (one input) or an array
// of token-id arrays.
void ParseOpenAiInput(const json& v, const ServeConfig& config, EmbeddingsRequest& r) {
  if (v.is_array() && !v.empty() && !v.front().is_string()) {
    r.from_tokens = true;
    if (v.front().is_array()) {
      for (const json& item : v) {
        if (!item.is_array()) {
          throw BadRequest("'input' mixes token-id arrays with " + TypeName(item));
        }
        r.token_ids.push_back(ParseTokenArray(item, r.token_ids.size(), config));
      }
    } else {
      r.token_ids.push_back(ParseTokenArray(v, 0, config));
    }
    if (static_cast<int64_t>(r.token_ids.size()) > config.max_inputs) {
      throw Unprocessable("'input' has " + std::to_string(r.token_ids.size()) +
                          " inputs; at most " + std::to_string(config.max_inputs) + " per request");
    }
    return;
  }
  r.texts = ParseTexts(v, "input", config);
}

void AppendFloat(std::string& out, float x) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);  // shortest round trip
  out.append(buf, end);
}

// The vector answered for input i of layer slot l: the first `dimensions` values, re-normalised
// when the request normalises. Internal error for a NaN/Inf or all-zero vector.
std::vector<float> OutputVector(const EmbeddingsRequest& request, const EmbedResult& result,
                                size_t l, int64_t i) {
  const Matrix& m = result.embeddings[l];
  const int64_t n = request.dimensions ? std::min(*request.dimensions, m.cols()) : m.cols();
  std::vector<float> v(m.Row(i), m.Row(i) + n);
  if (request.dimensions && request.options.normalization == Normalization::kL2) {
    NormalizeL2(v.data(), n);
  }
  bool nonzero = false;
  for (float x : v) {
    if (!std::isfinite(x)) {
      throw Internal("embedding of input " + std::to_string(i) + " is not finite");
    }
    nonzero = nonzero || x != 0.0f;
  }
  if (!nonzero) throw Internal("embedding of input " + std::to_string(i) + " is all zeros");
  return v;
}

json ParseWith(std::string_view body) { return ParseObject(body); }

}  // namespace

RequestError BadRequest(const std::string& m) {
  return {400, "invalid_request_error", "invalid_json", m};
}
RequestError Unprocessable(const std::string& m) {
  return {422, "invalid_request_error", "validation_error", m};
}
RequestError Unauthorized(const std::string& m) {
  return {401, "authentication_error", "invalid_api_key", m};
}
RequestError PayloadTooLarge(const std::string& m) {
  return {413, "invalid_request_error", "payload_too_large", m};
}
RequestError Overloaded(const std::string& m) { return {429, "rate_limit_error", "overloaded", m}; }
RequestError Unavailable(const std::string& m) { return {503, "server_error", "unavailable", m}; }
RequestError Internal(const std::string& m) { return {500, "server_error", "internal_error", m}; }

EmbeddingsRequest ParseOpenAiEmbeddings(std::string_view body, const ServeConfig& config) {
  const json j = ParseWith(body);
  EmbeddingsRequest r;
  r.route = Route::kOpenAi;
  const json* input = Field(j, "input");
  if (input == nullptr) throw BadRequest("'input' is required");
  if (const json* v = Field(j, "model")) AsString(*v, "model");  // any name: one model served
  if (const json* v = Field(j, "user")) AsString(*v, "user");
  if (const json* v = Field(j, "encoding_format")) {
    const std::string& f = AsString(*v, "encoding_format");
    if (f != "float" && f != "base64") {
      throw Unprocessable("'encoding_format' must be \"float\" or \"base64\", got \"" +
                          EscapeForMessage(f) + "\"");
    }
    r.base64 = f == "base64";
  }
  ParseCommonOptions(j, config, r);
  if (const json* v = Field(j, "dimensions")) {
    const int64_t d = AsInteger(*v, "dimensions");
    if (d < 1 || d > config.dim) {
      throw Unprocessable("'dimensions' must be in 1.." + std::to_string(config.dim) + ", got " +
                          std::to_string(d));
    }
    r.dimensions = d;
  }
  ParseOpenAiInput(*input, config, r);
  return r;
}

EmbeddingsRequest ParseTeiEmbed(std::string_view body, const ServeConfig& config) {
  const json j = ParseWith(body);
  EmbeddingsRequest r;
  r.route = Route::kTei;
  const json* inputs = Field(j, "inputs");
  if (inputs == nullptr) throw BadRequest("'inputs' is required");
  ParseCommonOptions(j, config, r);
  if (r.options.layers.size() != 1) {
    throw Unprocessable("/embed answers one vector per input: 'layers' must name one layer (" +
                        std::to_string(r.options.layers.size()) +
                        " given; /v1/embeddings returns several)");
  }
  r.texts = ParseTexts(*inputs, "inputs", config);
  return r;
}

TokenizeRequest ParseTokenize(std::string_view body, const ServeConfig& config) {
  const json j = ParseWith(body);
  const json* inputs = Field(j, "inputs");
  if (inputs == nullptr) throw BadRequest("'inputs' is required");
  if (const json* v = Field(j, "add_special_tokens")) AsBool(*v, "add_special_tokens");
  return {ParseTexts(*inputs, "inputs", config)};
}

std::vector<std::vector<int32_t>> PrepareTokens(const EmbeddingsRequest& request,
                                                const Tokenizer& tokenizer,
                                                const ServeConfig& config) {
  std::vector<std::vector<int32_t>> ids;
  if (request.from_tokens) {
    ids = request.token_ids;
  } else {
    ids.reserve(request.texts.size());
    for (size_t i = 0; i < request.texts.size(); ++i) {
      if (!IsValidUtf8(request.texts[i])) {
        throw Unprocessable("input[" + std::to_string(i) + "] is not valid UTF-8");
      }
      ids.push_back(tokenizer.Encode(request.texts[i]));
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t n = static_cast<int64_t>(ids[i].size());
    if (n == 0) throw Unprocessable("input[" + std::to_string(i) + "] has no tokens");
    if (n > config.max_input_tokens) {
      if (!request.truncate) {
        throw Unprocessable("input[" + std::to_string(i) + "] has " + std::to_string(n) +
                            " tokens, more than --max-input-tokens " +
                            std::to_string(config.max_input_tokens) +
                            " (send \"truncate\": true to cut it there)");
      }
      ids[i].resize(config.max_input_tokens);
    }
  }
  return ids;
}

std::string OpenAiEmbeddingsResponse(const EmbeddingsRequest& request, const EmbedResult& result,
                                     int64_t tokens, const ServeConfig& config) {
  std::string out = R"({"object":"list","data":[)";
  const int64_t n = static_cast<int64_t>(request.size());
  bool first = true;
  for (int64_t i = 0; i < n; ++i) {
    for (size_t l = 0; l < result.layers.size(); ++l) {
      const std::vector<float> v = OutputVector(request, result, l, i);
      out += first ? "" : ",";
      first = false;
      out += R"({"object":"embedding","index":)" + std::to_string(i) +
             ",\"layer\":" + std::to_string(result.layers[l]) + ",\"embedding\":";
      if (request.base64) {
        out += '"' + Base64Encode(Float32LittleEndianBytes(v.data(), v.size())) + '"';
      } else {
        out += '[';
        for (size_t c = 0; c < v.size(); ++c) {
          if (c) out += ',';
          AppendFloat(out, v[c]);
        }
        out += ']';
      }
      out += '}';
    }
  }
  out += R"(],"model":)" + json(config.model_name).dump() + R"(,"usage":{"prompt_tokens":)" +
         std::to_string(tokens) + R"(,"total_tokens":)" + std::to_string(tokens) + "}}";
  return out;
}

std::string TeiEmbedResponse(const EmbeddingsRequest& request, const EmbedResult& result) {
  std::string out = "[";
  for (int64_t i = 0; i < static_cast<int64_t>(request.size()); ++i) {
    const std::vector<float> v = OutputVector(request, result, 0, i);
    out += i ? ",[" : "[";
    for (size_t c = 0; c < v.size(); ++c) {
      if (c) out += ',';
      AppendFloat(out, v[c]);
    }
    out += ']';
  }
  return out + "]";
}

std::string TokenizeResponse(const TokenizeRequest& request,
                             const std::vector<std::vector<int32_t>>& ids,
                             const Tokenizer& tokenizer) {
  json out = json::array();
  for (size_t i = 0; i < request.texts.size(); ++i) {
    json tokens = json::array();
    int64_t start = 0;
    for (const int32_t id : ids[i]) {
      const std::string bytes = tokenizer.Decode(std::span(&id, 1));
      const int64_t stop = start + static_cast<int64_t>(bytes.size());
      tokens.push_back(
          {{"id", id}, {"text", bytes}, {"special", false}, {"start", start}, {"stop", stop}});
      start = stop;
    }
    out.push_back(std::move(tokens));
  }
  // A token may hold part of a multi-byte character: its "text" gets U+FFFD there.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ErrorBody(const RequestError& error) {
  const json body = {
      {"error", {{"message", error.what()}, {"type", error.type()}, {"code", error.code()}}}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ErrorBody(int status, const std::string& message) {
  const char* code = status == 404   ? "not_found"
                     : status == 405 ? "method_not_allowed"
                     : status == 413 ? "payload_too_large"
                                     : "http_error";
  const char* type = status >= 500 ? "server_error" : "invalid_request_error";
  return ErrorBody(RequestError(status, type, code, message));
}

std::string Base64Encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16 |
                       static_cast<uint8_t>(bytes[i + 1]) << 8 | static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const uint32_t v =
        static_cast<uint8_t>(bytes[i]) << 16 | (two ? static_cast<uint8_t>(bytes[i + 1]) << 8 : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += two ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::string Float32LittleEndianBytes(const float* v, int64_t n) {
  std::string out(static_cast<size_t>(n) * 4, '\0');
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    for (int b = 0; b < 4; ++b) out[i * 4 + b] = static_cast<char>(bits >> (8 * b) & 0xff);
  }
  return out;
}

}  // namespace rwkv_embed::serve

namespace rwkv_embed::serve {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  size_t diff = a.size() ^ b.size();
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<size_t>(x ^ y);
  }
  return diff == 0;
}

void CheckApiKey(std::string_view authorization, std::string_view key) {
  if (key.empty()) return;
  constexpr std::string_view kScheme = "Bearer ";
  if (!authorization.starts_with(kScheme)) {
    throw Unauthorized("missing 'Authorization: Bearer <key>' header");
  }
  if (!ConstantTimeEquals(authorization.substr(kScheme.size()), key)) {
    throw Unauthorized("invalid API key");
  }
}

}  // namespace rwkv_embed::serve
