// Fuzzes the request bodies of every `rwkv-embed serve` route (src/serve/protocol.h): each input
// is parsed as a POST /v1/embeddings, POST /embed and POST /tokenize body. Bad bodies must be
// RequestErrors with a 4xx status (never 5xx: parsing alone cannot fail the server); a parsed
// request goes on through PrepareTokens with the real World vocabulary and the response builders
// over a finite stand-in result, whose output must be JSON of the promised shape.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "serve/protocol.h"
#include "tokenizer/world_tokenizer.h"

namespace serve = rwkv_embed::serve;
using rwkv_embed::WorldTokenizer;

namespace {

const WorldTokenizer& Tokenizer() {
  static const WorldTokenizer* tok = new WorldTokenizer(WorldTokenizer::FromVocabFile(
      rwkv_embed::fuzz::SharedDir() / "models" / std::string(WorldTokenizer::kVocabFileName)));
  return *tok;
}

serve::ServeConfig Config() {
  serve::ServeConfig c;
  c.model_name = "fuzz";
  c.numbering.num_blocks = 3;
  c.dim = 8;
  c.vocab_size = 65536;
  c.layers = {4};
  c.max_input_tokens = 64;
  c.max_inputs = 32;
  return c;
}

// A RequestError must be a client error; anything else escaping is a finding.
template <class F>
void ExpectClientErrorsOnly(F&& f) {
  try {
    f();
  } catch (const serve::RequestError& e) {
    FUZZ_CHECK(e.status() >= 400 && e.status() < 500, "parse errors are 4xx");
    FUZZ_CHECK(nlohmann::json::parse(serve::ErrorBody(e))["error"]["message"].is_string(),
               "error body is OpenAI-shaped JSON");
  }
}

// Stand-in forward result: finite, non-zero rows.
rwkv_embed::EmbedResult FakeResult(const serve::EmbeddingsRequest& r, int64_t dim) {
  rwkv_embed::EmbedResult out;
  out.layers = r.options.layers;
  for (size_t l = 0; l < r.options.layers.size(); ++l) {
    rwkv_embed::Matrix m(static_cast<int64_t>(r.size()), dim);
    for (int64_t i = 0; i < m.rows(); ++i) {
      for (int64_t c = 0; c < dim; ++c) m.Row(i)[c] = 0.25f + static_cast<float>(c + i + l);
    }
    out.embeddings.push_back(std::move(m));
  }
  out.empty.assign(r.size(), 0);
  return out;
}

void CheckEmbeddings(const serve::EmbeddingsRequest& r, const serve::ServeConfig& c) {
  const auto ids = serve::PrepareTokens(r, Tokenizer(), c);
  FUZZ_CHECK(ids.size() == r.size() && !ids.empty(), "one id list per input");
  int64_t tokens = 0;
  for (const auto& t : ids) {
    FUZZ_CHECK(!t.empty() && static_cast<int64_t>(t.size()) <= c.max_input_tokens,
               "inputs within the token limit");
    for (int32_t id : t) FUZZ_CHECK(id >= 0 && id < c.vocab_size, "ids in the vocabulary");
    tokens += static_cast<int64_t>(t.size());
  }
  FUZZ_CHECK(!r.options.layers.empty(), "at least one layer");
  const auto result = FakeResult(r, c.dim);
  if (r.route == serve::Route::kOpenAi) {
    const auto out = nlohmann::json::parse(serve::OpenAiEmbeddingsResponse(r, result, tokens, c));
    FUZZ_CHECK(out["data"].size() == r.size() * r.options.layers.size(), "one item per vector");
    FUZZ_CHECK(out["usage"]["prompt_tokens"] == tokens, "usage counts the tokens");
  } else {
    const auto out = nlohmann::json::parse(serve::TeiEmbedResponse(r, result));
    FUZZ_CHECK(out.size() == r.size(), "one vector per input");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Tokenizer();  // load the vocabulary once, before the first input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body = rwkv_embed::fuzz::AsText(data, size);
  const serve::ServeConfig c = Config();
  ExpectClientErrorsOnly([&] { CheckEmbeddings(serve::ParseOpenAiEmbeddings(body, c), c); });
  ExpectClientErrorsOnly([&] { CheckEmbeddings(serve::ParseTeiEmbed(body, c), c); });
  ExpectClientErrorsOnly([&] {
    const auto r = serve::ParseTokenize(body, c);
    std::vector<std::vector<int32_t>> ids;
    for (const auto& t : r.texts) ids.push_back(Tokenizer().Encode(t));
    const auto out = nlohmann::json::parse(serve::TokenizeResponse(r, ids, Tokenizer()));
    FUZZ_CHECK(out.size() == r.texts.size(), "one token list per input");
  });
  return 0;
}
