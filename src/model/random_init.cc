#include "model/random_init.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/weights.h"

namespace rwkv_embed {
namespace {

ModelPreset Preset(std::string name, std::string description, int64_t C, int64_t L, int64_t E,
                   int64_t D) {
  ModelConfig c;
  c.vocab_size = 65536;
  c.hidden_size = C;
  c.num_layers = L;
  c.attention_hidden_size = C;
  c.head_size = 64;
  c.intermediate_size = DefaultIntermediateSize(C);
  c.time_mix_extra_dim = E;
  c.time_decay_extra_dim = D;
  c.random_weights = true;
  return {std::move(name), std::move(description), c};
}

// splitmix64: seeds each tensor's stream from (seed, name) so values do not depend on order.
uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class TensorRng {
 public:
  TensorRng(uint64_t seed, const std::string& name)
      : state_(seed ^ std::hash<std::string>{}(name)) {}
  // Uniform in [lo, hi).
  float Uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(SplitMix(state_) >> 40) * 0x1.0p-24f;
  }

 private:
  uint64_t state_;
};

class Writer {
 public:
  Writer(const RandomModelOptions& o, bool original) : options_(o), original_(original) {}

  // Fills a tensor element by element from f(rng, index).
  template <typename F>
  void Add(const std::string& hf_name, std::vector<int64_t> shape, F f) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    TensorToWrite t;
    t.name = original_ ? HfToOriginalName(hf_name) : hf_name;
    t.dtype = options_.dtype;
    t.shape = std::move(shape);
    t.bytes.resize(static_cast<size_t>(n) * DTypeSize(t.dtype));
    TensorRng rng(options_.seed, hf_name);
    std::byte* out = t.bytes.data();
    for (int64_t i = 0; i < n; ++i) {
      const float v = f(rng, i);
      if (t.dtype == DType::kF32) {
        std::memcpy(out + 4 * i, &v, 4);
      } else {
        const uint16_t h = t.dtype == DType::kBF16 ? F32ToBf16(v) : F32ToF16(v);
        std::memcpy(out + 2 * i, &h, 2);
      }
    }
    tensors_.push_back(std::move(t));
  }

  // Weights scaled like a trained model's: uniform with standard deviation `std`.
  void AddUniform(const std::string& name, std::vector<int64_t> shape, float std) {
    const float a = std * std::sqrt(3.0f);
    Add(name, std::move(shape), [a](TensorRng& r, int64_t) { return r.Uniform(-a, a); });
  }

  std::vector<TensorToWrite>& tensors() { return tensors_; }

 private:
  const RandomModelOptions& options_;
  bool original_;
  std::vector<TensorToWrite> tensors_;
};

void AddLayerNorm(Writer& w, const std::string& prefix, int64_t dim) {
  w.Add(prefix + ".weight", {dim}, [](TensorRng& r, int64_t) { return r.Uniform(0.8f, 1.2f); });
  w.Add(prefix + ".bias", {dim}, [](TensorRng& r, int64_t) { return r.Uniform(-0.1f, 0.1f); });
}

}  // namespace

const std::vector<ModelPreset>& ModelPresets() {
  static const std::vector<ModelPreset> presets = {
      Preset("tiny", "C=128, 3 layers, 2 heads (the shape of shared/models/tiny-rwkv6-bf16)", 128,
             3, 32, 64),
      Preset("finch-1b6", "RWKV/v6-Finch-1B6-HF shape: C=2048, 24 layers", 2048, 24, 32, 64),
      Preset("finch-3b", "RWKV/v6-Finch-3B-HF shape: C=2560, 32 layers", 2560, 32, 32, 64),
      Preset("finch-7b", "RWKV/v6-Finch-7B-HF shape: C=4096, 32 layers", 4096, 32, 64, 128),
      Preset("finch-14b", "RWKV/v6-Finch-14B-HF shape: C=4096, 61 layers", 4096, 61, 64, 128),
  };
  return presets;
}

const ModelPreset& FindModelPreset(std::string_view name) {
  std::string valid;
  for (const auto& p : ModelPresets()) {
    if (p.name == name) return p;
    valid += (valid.empty() ? "" : "|") + p.name;
  }
  throw UsageError("unknown model preset '" + std::string(name) + "' (valid: " + valid + ")");
}

void WriteRandomModel(const ModelConfig& c, const RandomModelOptions& options,
                      const std::filesystem::path& out_dir) {
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16 &&
      options.dtype != DType::kF16) {
    throw UsageError("init-model dtype must be f32, f16 or bf16");
  }
  if (options.shards < 1) throw UsageError("--shards must be >= 1");
  const int64_t V = c.vocab_size, C = c.hidden_size, A = c.attention_hidden_size;
  const int64_t S = c.head_size, H = A / S, F = c.intermediate_size;
  const int64_t E = c.time_mix_extra_dim, D = c.time_decay_extra_dim;
  if (V <= 0 || C <= 0 || c.num_layers <= 0 || A <= 0 || S <= 0 || A % S != 0 || F <= 0 || E <= 0 ||
      D <= 0) {
    throw UsageError("invalid model shape for init-model");
  }
  std::filesystem::create_directories(out_dir);

  Writer w(options, options.original_names);
  const float in_c = 1.0f / std::sqrt(static_cast<float>(C));
  w.AddUniform("rwkv.embeddings.weight", {V, C}, 1.0f);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "rwkv.blocks." + std::to_string(i) + ".";
    const std::string att = p + "attention.", ffn = p + "feed_forward.";
    if (i == 0) AddLayerNorm(w, p + "pre_ln", C);
    AddLayerNorm(w, p + "ln1", C);
    AddLayerNorm(w, p + "ln2", C);
    // Token-shift mixes in [0, 1] as in a trained model.
    for (const char* m : {"x", "w", "k", "v", "r", "g"}) {
      w.Add(att + "time_maa_" + m, {1, 1, C},
            [](TensorRng& r, int64_t) { return r.Uniform(0.0f, 1.0f); });
    }
    w.AddUniform(att + "time_maa_w1", {C, 5 * E}, 0.1f * in_c);
    w.AddUniform(att + "time_maa_w2", {5, E, C}, 0.1f / std::sqrt(static_cast<float>(E)));
    // Decay log-rates spread over [-6, -1] like RWKV-6's init (w = -6 + 5 (n/(A-1))^p).
    w.Add(att + "time_decay", {1, 1, A}, [A](TensorRng& r, int64_t n) {
      return -6.0f +
             5.0f * std::pow(static_cast<float>(n) / static_cast<float>(A - 1 ? A - 1 : 1), 0.7f) +
             r.Uniform(-0.1f, 0.1f);
    });
    w.AddUniform(att + "time_decay_w1", {C, D}, 0.1f * in_c);
    w.AddUniform(att + "time_decay_w2", {D, A}, 0.1f / std::sqrt(static_cast<float>(D)));
    w.Add(att + "time_faaaa", {H, S}, [](TensorRng& r, int64_t) { return r.Uniform(-0.5f, 1.0f); });
    for (const char* m : {"receptance", "key", "value", "gate"}) {
      w.AddUniform(att + m + ".weight", {A, C}, in_c);
    }
    w.AddUniform(att + "output.weight", {C, A}, 1.0f / std::sqrt(static_cast<float>(A)));
    AddLayerNorm(w, att + "ln_x", A);
    for (const char* m : {"k", "r"}) {
      w.Add(ffn + "time_maa_" + m, {1, 1, C},
            [](TensorRng& r, int64_t) { return r.Uniform(0.0f, 1.0f); });
    }
    w.AddUniform(ffn + "key.weight", {F, C}, in_c);
    w.AddUniform(ffn + "receptance.weight", {C, C}, in_c);
    w.AddUniform(ffn + "value.weight", {C, F}, 1.0f / std::sqrt(static_cast<float>(F)));
  }
  AddLayerNorm(w, "rwkv.ln_out", C);
  w.AddUniform("head.weight", {V, C}, in_c);

  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"rwkv_embed", "random weights"}};
  auto& tensors = w.tensors();
  if (options.shards == 1) {
    WriteSafetensors(out_dir / "model.safetensors", tensors, metadata);
  } else {
    // Round-robin by size order keeps shards balanced; the index maps every tensor to its shard.
    const int n = options.shards;
    std::vector<std::vector<TensorToWrite>> parts(n);
    nlohmann::json weight_map = nlohmann::json::object();
    size_t total = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      total += tensors[i].bytes.size();
      parts[i % n].push_back(std::move(tensors[i]));
    }
    for (int s = 0; s < n; ++s) {
      char file[64];
      std::snprintf(file, sizeof(file), "model-%05d-of-%05d.safetensors", s + 1, n);
      for (const auto& t : parts[s]) weight_map[t.name] = file;
      WriteSafetensors(out_dir / file, parts[s], metadata);
    }
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    std::ofstream(out_dir / "model.safetensors.index.json") << index.dump(2) << "\n";
  }
  ModelConfig written = c;
  written.random_weights = true;
  std::ofstream cfg(out_dir / "config.json");
  cfg << written.ToJson().dump(2) << "\n";
  if (!cfg) throw IoError("cannot write " + (out_dir / "config.json").string());
  if (!options.vocab.empty()) {
    std::filesystem::copy_file(options.vocab, out_dir / "rwkv_vocab_v20230424.txt",
                               std::filesystem::copy_options::overwrite_existing);
  }
}

}  // namespace rwkv_embed
