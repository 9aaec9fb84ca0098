// Where the RWKV World vocabulary is found when the user names none. BlinkDL's and EmbeddingRWKV's
// `.pth` releases ship without one, so after the model's own folder come $RWKV_EMBED_VOCAB and the
// copy installed with rwkv-embed (`<datadir>/rwkv-embed/`, fixed at build time).
#pragma once

#include <filesystem>
#include <vector>

namespace rwkv_embed {

// The vocabulary file HF RWKV-6 model folders ship.
inline constexpr const char* kWorldVocabFile = "rwkv_vocab_v20230424.txt";

// The places searched, in order, for a model at `model_path` (a folder or a checkpoint file):
//   1. rwkv_vocab_v20230424.txt in the folder, or beside the checkpoint file;
//   2. $RWKV_EMBED_VOCAB (a file) when set and not empty;
//   3. <install datadir>/rwkv-embed/rwkv_vocab_v20230424.txt.
std::vector<std::filesystem::path> WorldVocabCandidates(const std::filesystem::path& model_path);

// The first candidate that exists. IoError listing every place looked when none does.
std::filesystem::path FindWorldVocab(const std::filesystem::path& model_path);

// The installed data directory baked in at build time (CMAKE_INSTALL_FULL_DATADIR/rwkv-embed).
std::filesystem::path InstalledDataDir();

}  // namespace rwkv_embed
