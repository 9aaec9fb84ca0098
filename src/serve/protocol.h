// The HTTP API of `rwkv-embed serve` as pure functions: request bodies (JSON) -> typed, validated
// requests, and results -> response bodies. No sockets and no model here, so every route's parsing
// can be unit-tested and fuzzed (fuzz/serve_request_fuzz.cc); apps/cli/cmd_serve.cc wires these to
// HTTP and the batcher (serve/batcher.h).
//
// Routes: POST /v1/embeddings (OpenAI), POST /embed (Hugging Face text-embeddings-inference),
// POST /tokenize (TEI). Every failure is a RequestError carrying the HTTP status and the
// OpenAI-shaped error body's type and code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/embedder.h"
#include "core/error.h"
#include "model/layer_spec.h"
#include "pooling/pooling.h"
#include "tokenizer/tokenizer.h"

namespace rwkv_embed::serve {

// A request the server answers with an error: HTTP `status` and the body
// {"error": {"message": what(), "type": type, "code": code}}.
class RequestError : public Error {
 public:
  RequestError(int status, std::string type, std::string code, const std::string& message)
      : Error(message), status_(status), type_(std::move(type)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string type_, code_;
};

// The statuses of the API (docs/server.md): 400 malformed JSON or a field of the wrong type,
// 422 a well-typed but invalid value, 401/413/429/503 from the front end.
RequestError BadRequest(const std::string& message);       // 400 invalid_request_error
RequestError Unprocessable(const std::string& message);    // 422 invalid_request_error
RequestError Unauthorized(const std::string& message);     // 401 authentication_error
RequestError PayloadTooLarge(const std::string& message);  // 413 invalid_request_error
RequestError Overloaded(const std::string& message);       // 429 rate_limit_error (Retry-After)
RequestError Unavailable(const std::string& message);      // 503 server_error
RequestError Internal(const std::string& message);         // 500 server_error

// What the server was started with: the defaults a request may override, and the limits.
struct ServeConfig {
  std::string model_name;  // "model" in responses; requests may name any model (ignored)
  LayerNumbering numbering;
  int64_t dim = 0;         // hidden size C
  int64_t vocab_size = 0;  // token ids must be below this (the model's embedding rows)
  std::vector<int> layers;
  Pooling pooling = Pooling::kMean;
  Normalization normalization = Normalization::kL2;
  int64_t max_input_tokens = 8192;  // per input text; longer is 422 unless "truncate"
  int64_t max_inputs = 2048;        // inputs per request (OpenAI's limit)
};

// The embedding options of one request: the batcher groups requests by them.
struct EmbedOptions {
  std::vector<int> layers;
  Pooling pooling = Pooling::kMean;
  Normalization normalization = Normalization::kL2;
  bool operator==(const EmbedOptions&) const = default;
  EmbedRequest ToEmbedRequest() const { return {layers, pooling, normalization}; }
};

enum class Route { kOpenAi, kTei };

struct EmbeddingsRequest {
  Route route = Route::kOpenAi;
  // Exactly one of these is filled: texts, or token ids given by the client (OpenAI only).
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> token_ids;
  bool from_tokens = false;
  bool base64 = false;                // OpenAI encoding_format
  std::optional<int64_t> dimensions;  // OpenAI: keep the first N, then re-normalise (l2)
  bool truncate = false;              // cut inputs at max_input_tokens instead of 422
  EmbedOptions options;
  size_t size() const { return from_tokens ? token_ids.size() : texts.size(); }
};

// POST /v1/embeddings: {"input": string | [string] | [[int]], "model", "encoding_format":
// "float"|"base64", "dimensions", "user" (ignored), extensions "layers" (string spec as in
// `embed --layers`, or an array of layer numbers), "pooling", "normalize" ("l2"|"none"|bool),
// "truncate"}.
EmbeddingsRequest ParseOpenAiEmbeddings(std::string_view body, const ServeConfig& config);
// POST /embed: {"inputs": string | [string], "normalize": bool, "truncate": bool}, plus the same
// "layers"/"pooling" extensions (one layer: TEI answers one vector per input).
EmbeddingsRequest ParseTeiEmbed(std::string_view body, const ServeConfig& config);

struct TokenizeRequest {
  std::vector<std::string> texts;
};
// POST /tokenize: {"inputs": string | [string], "add_special_tokens": bool (no special tokens
// exist: ignored)}.
TokenizeRequest ParseTokenize(std::string_view body, const ServeConfig& config);

// The token ids fed for each input: texts tokenized, client ids checked against the vocabulary,
// every input non-empty and within max_input_tokens (cut there when truncate). 422 naming the
// input otherwise.
std::vector<std::vector<int32_t>> PrepareTokens(const EmbeddingsRequest& request,
                                                const Tokenizer& tokenizer,
                                                const ServeConfig& config);

// Response bodies. `result` holds one row per input (EmbedTokens over PrepareTokens' ids) for
// each requested layer; `tokens` are the inputs' token counts. A vector with a NaN/Inf or all
// zeros (after `dimensions`) is an Internal error naming the input: never answered with 200.
std::string OpenAiEmbeddingsResponse(const EmbeddingsRequest& request, const EmbedResult& result,
                                     int64_t tokens, const ServeConfig& config);
std::string TeiEmbedResponse(const EmbeddingsRequest& request, const EmbedResult& result);
// TEI's shape: per input, a list of {"id", "text", "special", "start", "stop"} (byte offsets).
std::string TokenizeResponse(const TokenizeRequest& request,
                             const std::vector<std::vector<int32_t>>& ids,
                             const Tokenizer& tokenizer);
std::string ErrorBody(const RequestError& error);
std::string ErrorBody(int status, const std::string& message);  // for the front end's own errors

// Standard base64 (RFC 4648, padded) of raw bytes; OpenAI's encoding_format=base64 sends the
// float32 values little-endian.
std::string Base64Encode(std::string_view bytes);
std::string Float32LittleEndianBytes(const float* v, int64_t n);

}  // namespace rwkv_embed::serve

namespace rwkv_embed::serve {

// Compares in time that depends only on the lengths, never on where the strings differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// Unauthorized unless `authorization` is "Bearer <key>" (an empty key turns checks off).
void CheckApiKey(std::string_view authorization, std::string_view key);

}  // namespace rwkv_embed::serve
