// What the embedder needs from a tokenizer: bytes in, token ids out. Implemented by the RWKV
// World tokenizer (world_tokenizer.h) and the byte-level one (byte_tokenizer.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv_embed {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Appends the ids of `bytes` to `out` without clearing it. No BOS/EOS is added.
  virtual void EncodeAppend(std::string_view bytes, std::vector<int32_t>& out) const = 0;
  // The bytes of the concatenated tokens; UsageError for an id without a token.
  virtual std::string Decode(std::span<const int32_t> ids) const = 0;
  // Largest id + 1: the model must embed at least this many.
  virtual int32_t vocab_size() const = 0;
  // "RWKV World (65530 ids) from FILE", "byte-level (256 ids)".
  virtual std::string Describe() const = 0;

  std::vector<int32_t> Encode(std::string_view bytes) const {
    std::vector<int32_t> ids;
    EncodeAppend(bytes, ids);
    return ids;
  }
};

}  // namespace rwkv_embed
