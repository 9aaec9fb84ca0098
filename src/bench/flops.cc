#include "bench/flops.h"

#include <string>

#include "core/error.h"

namespace rwkv_embed::bench {

int64_t ProjectionParamsPerBlock(const ModelConfig& c) {
  const int64_t C = c.hidden_size, A = c.attention_hidden_size, F = c.intermediate_size;
  const int64_t E = c.time_mix_extra_dim, D = c.time_decay_extra_dim;
  if (C <= 0 || A <= 0 || F <= 0 || E <= 0 || D <= 0) {
    throw UsageError("FLOP count needs every dimension (C=" + std::to_string(C) +
                     ", A=" + std::to_string(A) + ", F=" + std::to_string(F) +
                     ", LoRA E=" + std::to_string(E) + ", D=" + std::to_string(D) +
                     "): take the config from loaded weights, not config.json");
  }
  const int64_t time_mix = 4 * A * C + C * A;         // r, k, v, g; output
  const int64_t shift_lora = C * 5 * E + 5 * E * C;   // time_maa_w1, time_maa_w2
  const int64_t decay_lora = C * D + D * A;           // time_decay_w1, time_decay_w2
  const int64_t channel_mix = F * C + C * F + C * C;  // key, value, receptance
  return time_mix + shift_lora + decay_lora + channel_mix;
}

int64_t ProjectionParams(const ModelConfig& c) {
  return ProjectionParamsPerBlock(c) * c.num_layers;
}

int64_t WkvFlopsPerTokenPerBlock(const ModelConfig& c) {
  return 8 * c.attention_hidden_size * c.head_size;
}

double ForwardFlops(const ModelConfig& c, int64_t tokens) {
  const double n = static_cast<double>(tokens);
  return 2.0 * n * static_cast<double>(ProjectionParams(c)) +
         n * static_cast<double>(c.num_layers) * static_cast<double>(WkvFlopsPerTokenPerBlock(c));
}

}  // namespace rwkv_embed::bench
