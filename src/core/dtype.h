// Element types found in checkpoints, and scalar conversions between them.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace rwkv_embed {

enum class DType : uint8_t { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

size_t DTypeSize(DType t);
std::string_view DTypeName(DType t);  // safetensors spelling: "F32", "BF16", ...

// BF16 is the top half of an IEEE binary32.
inline float Bf16ToF32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Round-to-nearest-even, NaN kept NaN (same as torch's float -> bfloat16).
inline uint16_t F32ToBf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Widens n BF16 values stored at `src` to FP32. `src` may have any alignment: tensors mapped
// from a safetensors file start wherever the header ends, an odd address for an odd header
// length, and a uint16_t read through such a pointer is undefined behaviour. memcpy compiles to
// the same (vectorized) unaligned loads.
inline void Bf16ToF32Row(const void* src, int64_t n, float* dst) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, bytes + 2 * i, 2);
    dst[i] = Bf16ToF32(h);
  }
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

}  // namespace rwkv_embed
