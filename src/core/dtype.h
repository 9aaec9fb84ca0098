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

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

}  // namespace rwkv_embed
