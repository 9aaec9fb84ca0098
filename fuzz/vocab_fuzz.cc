// Fuzzes World vocabulary parsing (WorldTokenizer::FromVocabText) and, when a vocabulary parses,
// encoding with it: Decode(Encode(x)) must give x back, with every id in range.
#include <algorithm>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/world_tokenizer.h"

using rwkv_embed::WorldTokenizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = rwkv_embed::fuzz::AsText(data, size);
  rwkv_embed::fuzz::ExpectOnlyLibraryErrors([&] {
    const WorldTokenizer tok = WorldTokenizer::FromVocabText(text, "fuzz-vocab");
    FUZZ_CHECK(tok.num_tokens() <= tok.vocab_size(), "token count within the id range");
    // Ids go up to 2^24; a sample of them is enough.
    for (int32_t id = 0; id < std::min(tok.vocab_size(), 70000); ++id) {
      FUZZ_CHECK(tok.TokenBytes(id).size() <= tok.max_token_length(), "longest token");
    }
    // The vocabulary's own bytes are a text with many of its tokens in it. Encode throws a
    // DataError only if a byte has no token.
    const std::vector<int32_t> ids = tok.Encode(text);
    for (int32_t id : ids) FUZZ_CHECK(id > 0 && id < tok.vocab_size(), "id in range");
    FUZZ_CHECK(tok.Decode(ids) == text, "Decode(Encode(x)) == x");
  });
  return 0;
}
