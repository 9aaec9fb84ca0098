// Fuzzes encoding arbitrary bytes with the real World vocabulary against a naive reference:
// greedy longest match means that at each position no longer token matches than the one chosen,
// and Decode(Encode(x)) == x.
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/world_tokenizer.h"

using rwkv_embed::WorldTokenizer;

namespace {

struct Reference {
  WorldTokenizer tok;
  std::unordered_map<std::string_view, int32_t> id_of;  // views into tok's storage
  std::unordered_set<std::string_view> prefixes;        // every prefix of every token
};

const Reference& Ref() {
  static const Reference* ref = [] {
    const auto path =
        rwkv_embed::fuzz::SharedDir() / "models" / std::string(WorldTokenizer::kVocabFileName);
    auto* r = new Reference{WorldTokenizer::FromVocabFile(path), {}, {}};
    for (int32_t id = 0; id < r->tok.vocab_size(); ++id) {
      const std::string_view token = r->tok.TokenBytes(id);
      if (token.empty()) continue;
      r->id_of.emplace(token, id);
      for (size_t n = 1; n <= token.size(); ++n) r->prefixes.insert(token.substr(0, n));
    }
    return r;
  }();
  return *ref;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Ref();  // load the vocabulary once, before the first input (an IoError here is fatal)
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Reference& ref = Ref();
  const std::string_view text = rwkv_embed::fuzz::AsText(data, size);
  const std::vector<int32_t> ids = ref.tok.Encode(text);  // never throws with the real vocab
  FUZZ_CHECK(ref.tok.Decode(ids) == text, "Decode(Encode(x)) == x");
  size_t pos = 0;
  for (int32_t id : ids) {
    FUZZ_CHECK(id > 0 && id < ref.tok.vocab_size(), "id in range");
    const std::string_view token = ref.tok.TokenBytes(id);
    FUZZ_CHECK(text.substr(pos, token.size()) == token, "token matches the text");
    // A longer token matching here would have all its prefixes in `prefixes`: extend while
    // some token still starts with the text.
    for (size_t n = token.size() + 1;
         pos + n <= text.size() && ref.prefixes.contains(text.substr(pos, n)); ++n) {
      FUZZ_CHECK(!ref.id_of.contains(text.substr(pos, n)), "no longer token matches here");
    }
    pos += token.size();
  }
  FUZZ_CHECK(pos == text.size(), "tokens cover the text");
  return 0;
}
