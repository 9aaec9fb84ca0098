// Byte-level tokenization: token id = the value of each UTF-8 byte (0..255), as the tiny
// rwkv.cpp test models and other byte-vocabulary RWKV models use.
#pragma once

#include "tokenizer/tokenizer.h"

namespace rwkv_embed {

class ByteTokenizer final : public Tokenizer {
 public:
  void EncodeAppend(std::string_view bytes, std::vector<int32_t>& out) const override;
  std::string Decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return 256; }
  std::string Describe() const override { return "byte-level (id = UTF-8 byte, 256 ids)"; }
};

}  // namespace rwkv_embed
