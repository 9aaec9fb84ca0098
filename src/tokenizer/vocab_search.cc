#include "tokenizer/vocab_search.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

#ifndef RWKV_EMBED_DATA_DIR
#define RWKV_EMBED_DATA_DIR "/usr/local/share/rwkv-embed"
#endif

namespace rwkv_embed {

std::filesystem::path InstalledDataDir() { return RWKV_EMBED_DATA_DIR; }

std::vector<std::filesystem::path> WorldVocabCandidates(const std::filesystem::path& model_path) {
  const auto folder =
      std::filesystem::is_directory(model_path) ? model_path : model_path.parent_path();
  std::vector<std::filesystem::path> places = {folder / kWorldVocabFile};
  if (const char* env = std::getenv("RWKV_EMBED_VOCAB"); env != nullptr && *env != '\0') {
    places.emplace_back(env);
  }
  places.push_back(InstalledDataDir() / kWorldVocabFile);
  return places;
}

std::filesystem::path FindWorldVocab(const std::filesystem::path& model_path) {
  const auto places = WorldVocabCandidates(model_path);
  std::string looked;
  for (const auto& p : places) {
    if (std::filesystem::is_regular_file(p)) return p;
    looked += "\n  " + p.string();
  }
  if (std::getenv("RWKV_EMBED_VOCAB") == nullptr) looked += "\n  ($RWKV_EMBED_VOCAB: not set)";
  throw IoError("World vocabulary " + std::string(kWorldVocabFile) + " not found; looked in:" +
                looked + "\n(pass --vocab FILE, set RWKV_EMBED_VOCAB, install it into " +
                InstalledDataDir().string() + ", or use --tokenizer bytes for a byte-level model)");
}

}  // namespace rwkv_embed
