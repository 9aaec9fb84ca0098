#include "bench/flops.h"

#include <string>

#include "core/error.h"

namespace rwkv_embed::bench {

int64_t ProjectionParamsPerBlock(const Rwkv6Config& c) {
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

int64_t ProjectionParams(const Rwkv6Config& c) {
  return ProjectionParamsPerBlock(c) * c.num_layers;
}

int64_t WkvFlopsPerTokenPerBlock(const Rwkv6Config& c) {
  return 8 * c.attention_hidden_size * c.head_size;
}

double ForwardFlops(const Rwkv6Config& c, int64_t tokens) {
  const double n = static_cast<double>(tokens);
  return 2.0 * n * static_cast<double>(ProjectionParams(c)) +
         n * static_cast<double>(c.num_layers) * static_cast<double>(WkvFlopsPerTokenPerBlock(c));
}

int64_t ProjectionParams(const Rwkv7Config& c) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, L = c.num_layers;
  if (C <= 0 || F <= 0 || L <= 0 || c.decay_lora <= 0 || c.a_lora <= 0 || c.gate_lora <= 0 ||
      (L > 1 && c.v_lora <= 0)) {
    throw UsageError("FLOP count needs every RWKV-7 dimension (C=" + std::to_string(C) +
                     ", F=" + std::to_string(F) + ", L=" + std::to_string(L) + ", LoRA " +
                     std::to_string(c.decay_lora) + "/" + std::to_string(c.a_lora) + "/" +
                     std::to_string(c.v_lora) + "/" + std::to_string(c.gate_lora) + ")");
  }
  const int64_t time_mix = 4 * C * C;                                    // r, k, v, output
  const int64_t lora = 2 * C * (c.decay_lora + c.a_lora + c.gate_lora);  // w, a, g
  const int64_t channel_mix = 2 * F * C;                                 // key, value
  return L * (time_mix + lora + channel_mix) + (L - 1) * 2 * C * c.v_lora;
}

int64_t WkvFlopsPerTokenPerBlock(const Rwkv7Config& c) { return 9 * c.hidden_size * c.head_size; }

double ForwardFlops(const Rwkv7Config& c, int64_t tokens) {
  const double n = static_cast<double>(tokens);
  return 2.0 * n * static_cast<double>(ProjectionParams(c)) +
         n * static_cast<double>(c.num_layers) * static_cast<double>(WkvFlopsPerTokenPerBlock(c));
}

}  // namespace rwkv_embed::bench
