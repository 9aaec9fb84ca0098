// RWKV-6 model hyper-parameters: read from config.json, inferred from tensor shapes, and checked
// against each other (only the shapes are authoritative: LoRA sizes exist only there).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace rwkv_embed {

class TensorStore;

// Range limits of config fields (Rwkv6Config::FromJsonFile, init-model): far beyond any released
// RWKV (Finch-14B: C = 4096, 61 blocks, divisor 8), small enough that no product of two fields
// overflows 64 bits. Token ids are int32, hence the vocabulary limit.
inline constexpr int64_t kMaxConfigDim = int64_t{1} << 20;
inline constexpr int64_t kMaxConfigLayers = int64_t{1} << 16;
inline constexpr int64_t kMaxConfigVocab = 2147483647;
// ln_x's GroupNorm eps is 1e-5 * divisor^2: 1024 already gives 10.5, more than any activation
// variance.
inline constexpr int64_t kMaxHeadSizeDivisor = 1024;

struct Rwkv6Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;            // C
  int64_t num_layers = 0;             // L
  int64_t attention_hidden_size = 0;  // A (= C for released Finch models)
  int64_t head_size = 64;             // S
  int64_t intermediate_size = 0;      // F; config null -> int(3.5*C)//32*32
  int64_t time_mix_extra_dim = 0;    // E: LoRA rank of the token-shift mixes (time_maa_w1: [C, 5E])
  int64_t time_decay_extra_dim = 0;  // D: LoRA rank of the decay (time_decay_w1: [C, D])
  int64_t head_size_divisor = 8;
  double layer_norm_epsilon = 1e-5;
  int64_t rescale_every = 6;    // HF halves hidden states in fp16/bf16 inference; we never do
  bool random_weights = false;  // written by `init-model`: the weights mean nothing

  int64_t num_heads() const { return attention_hidden_size / head_size; }
  // GroupNorm eps of ln_x: HF uses 1e-5 * head_size_divisor^2 (64e-5 for divisor 8). Squared in
  // double: FromJsonFile bounds the divisor, but a config built in code need not be.
  double group_norm_epsilon() const {
    const auto d = static_cast<double>(head_size_divisor);
    return 1e-5 * d * d;
  }
  // Layer numbering: 0 = embeddings after pre_ln, k = block k, L+1 = after ln_out.
  int num_hidden_layers_with_ends() const { return static_cast<int>(num_layers) + 2; }

  // Parses a HF config.json (model_type rwkv6). LoRA dims are left 0 (shapes tell them).
  // Every field is range-checked (sizes up to 2^20, layers up to 2^16, vocab up to 2^31 - 1,
  // head_size_divisor up to 1024, layer_norm_epsilon in (0, 1)).
  // Throws IoError / FormatError naming the file and field.
  static Rwkv6Config FromJsonFile(const std::filesystem::path& path);
  nlohmann::json ToJson() const;
};

// HF's default when intermediate_size is null.
inline int64_t DefaultIntermediateSize(int64_t hidden_size) {
  return (hidden_size * 7 / 2) / 32 * 32;
}

// Earlier name, from when RWKV-6 was the only architecture; kept so callers written against it
// still build.
using ModelConfig = Rwkv6Config;

}  // namespace rwkv_embed
