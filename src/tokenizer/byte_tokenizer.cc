#include "tokenizer/byte_tokenizer.h"

#include "core/error.h"

namespace rwkv_embed {

void ByteTokenizer::EncodeAppend(std::string_view bytes, std::vector<int32_t>& out) const {
  out.reserve(out.size() + bytes.size());
  for (char ch : bytes) out.push_back(static_cast<unsigned char>(ch));
}

std::string ByteTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || ids[k] > 255) {
      throw UsageError("token id " + std::to_string(ids[k]) + " (position " + std::to_string(k) +
                       ") is not a byte (0..255)");
    }
    out.push_back(static_cast<char>(ids[k]));
  }
  return out;
}

}  // namespace rwkv_embed
