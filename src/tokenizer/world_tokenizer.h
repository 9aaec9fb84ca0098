// The RWKV "World" tokenizer (rwkv_vocab_v20230424.txt): greedy longest match over the UTF-8 bytes
// of the text, exactly as the RWKV authors' TRIE_TOKENIZER in rwkv_tokenizer.py ("always pick the
// longest (in bytes) token that matches your UTF-8 bytes"). No BOS/EOS is added; id 0 is not in
// the vocabulary and is reserved by RWKV for end-of-text / padding.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace rwkv_embed {

class WorldTokenizer final : public Tokenizer {
 public:
  // The vocabulary's file name in every Hugging Face RWKV-6 model folder.
  static constexpr std::string_view kVocabFileName = "rwkv_vocab_v20230424.txt";

  // Parses a vocabulary file whose lines are `ID <python str or bytes literal> BYTE_LENGTH`.
  // Throws IoError when the file cannot be read and FormatError (naming the file and 1-based line)
  // for a malformed line, a bad escape, a byte-length mismatch, or a duplicate id or byte string.
  static WorldTokenizer FromVocabFile(const std::filesystem::path& path);

  // FromVocabFile(dir / kVocabFileName); IoError naming the folder when it or the file is absent.
  static WorldTokenizer FromModelDir(const std::filesystem::path& dir);

  // Same, from the file's contents; `source` names it in error messages.
  static WorldTokenizer FromVocabText(std::string_view text, std::string_view source);

  // Token ids of `bytes` (any bytes: invalid UTF-8 is tokenized as raw bytes; callers validate
  // user text with ValidateUtf8 first). Throws DataError only when the vocabulary has no token
  // starting at some position, i.e. lacks a single-byte token (never for the real World
  // vocabulary, which has all 256 bytes).
  std::vector<int32_t> Encode(std::string_view bytes) const;

  // Appends the ids of `bytes` to `out` without clearing it (for packing many sentences into one
  // buffer without reallocating).
  void EncodeAppend(std::string_view bytes, std::vector<int32_t>& out) const override;

  // The bytes of the concatenated tokens. Throws UsageError naming the id for an id outside
  // [0, vocab_size()) or one that has no token (id 0, gaps in the file).
  std::string Decode(std::span<const int32_t> ids) const override;

  // Largest id + 1 (65530 for rwkv_vocab_v20230424.txt; models pad their embedding to 65536).
  int32_t vocab_size() const override { return static_cast<int32_t>(token_offsets_.size()) - 1; }

  // "RWKV World vocabulary (65529 tokens) from FILE".
  std::string Describe() const override;

  // Number of ids that have a token (65529 for the real file).
  int32_t num_tokens() const { return num_tokens_; }

  // Bytes of token `id` (empty for ids without a token); `id` must be in [0, vocab_size()).
  std::string_view TokenBytes(int32_t id) const;

  // Longest token, in bytes (128 for the real file).
  size_t max_token_length() const { return max_token_length_; }

 private:
  WorldTokenizer() = default;

  // Build the lookup structures from the parsed tokens (token_bytes_, token_offsets_).
  void BuildIndex();

  // A token of >= 3 bytes. The first 8 bytes (zero-padded) and the length identify tokens of up to
  // 8 bytes completely; longer ones are confirmed with memcmp against token_bytes_.
  struct Slot {
    uint64_t head = 0;
    int32_t id = -1;
    uint32_t length = 0;  // 0 marks an empty slot
  };

  // Whether the filter admits `hash` (false: certainly no token has it).
  bool MayContain(uint64_t hash) const {
    const uint64_t bit = hash >> filter_shift_;
    return (filter_[bit / 64] >> (bit % 64) & 1) != 0;
  }

  // Id of the token equal to s[0, length), or -1. length >= 3; `hash` = HashToken(s, length, head).
  int32_t Find(const unsigned char* s, uint32_t length, uint64_t head, uint64_t hash) const;

  std::string source_;                   // where the vocabulary came from
  std::string token_bytes_;              // all tokens' bytes, concatenated by id
  std::vector<uint32_t> token_offsets_;  // token id's bytes are [offsets[id], offsets[id+1])
  int32_t num_tokens_ = 0;
  size_t max_token_length_ = 0;

  // Greedy longest match, indexed by the first two bytes (b0 << 8 | b1): the lengths (>= 3,
  // descending) of the tokens that start with them, so that only lengths that exist are probed,
  // and the id of the 2-byte token itself (-1 if none). prefix_length_begin_ has 65537 entries.
  std::vector<int32_t> byte_id_;               // [256] id of the 1-byte token, -1 if none
  std::vector<int32_t> pair_id_;               // [65536] id of the 2-byte token, -1 if none
  std::vector<uint32_t> prefix_length_begin_;  // [65537] into prefix_lengths_
  std::vector<uint32_t> prefix_lengths_;

  // Open-addressing hash table (linear probing, power-of-two size) of all tokens of >= 3 bytes.
  std::vector<Slot> slots_;
  uint64_t slot_mask_ = 0;

  // One-bit-per-hash Bloom filter over the same tokens (top bits of the hash), small enough to
  // stay in L2: most candidate lengths are misses (7.6 candidates per token on the golden texts),
  // and the filter rejects ~97% of them without touching the much larger slot table.
  std::vector<uint64_t> filter_;
  int filter_shift_ = 64;
};

}  // namespace rwkv_embed
