#include "model/rwkv7/rwkv7_random.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/rwkv6/rwkv6_random.h"

namespace rwkv_embed {
namespace {

Rwkv7Preset Preset(std::string name, std::string description, int64_t C, int64_t L, int64_t F,
                   int64_t Dw, int64_t Da, int64_t Dv, int64_t Dg) {
  Rwkv7Config c;
  c.vocab_size = 65536;
  c.hidden_size = C;
  c.num_layers = L;
  c.head_size = 64;
  c.num_heads = C / 64;
  c.intermediate_size = F;
  c.decay_lora = Dw;
  c.a_lora = Da;
  c.v_lora = Dv;
  c.gate_lora = Dg;
  c.random_weights = true;
  return {std::move(name), std::move(description), c};
}

// splitmix64 seeded from (seed, authors' tensor name): values do not depend on tensor order or
// naming.
class TensorRng {
 public:
  TensorRng(uint64_t seed, const std::string& name)
      : state_(seed ^ std::hash<std::string>{}(name)) {}
  float Uniform(float lo, float hi) {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * static_cast<float>(z >> 40) * 0x1.0p-24f;
  }

 private:
  uint64_t state_;
};

// How a tensor is stored: the authors' shape, or fla's (LoRA factors transposed, [1,1,C] vectors
// flattened where fla stores [C]).
enum class Layout { kAsIs, kTransposed, kFlatForFla };

// Walks every tensor of the checkpoint; with size_only it only adds up bytes (no allocation).
class Builder {
 public:
  Builder(const Rwkv7RandomOptions& o, bool size_only) : options_(o), size_only_(size_only) {}

  // `authors`: the authors' name; shape in the authors' layout; f(rng, index) gives the values
  // in that layout.
  template <typename F>
  void Add(const std::string& authors, std::vector<int64_t> shape, Layout layout, F f) {
    uint64_t n = 1;
    for (int64_t d : shape) {
      if (d <= 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) overflow_ = true;
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(n, DTypeSize(options_.dtype), &bytes) ||
        __builtin_add_overflow(total_, bytes, &total_)) {
      overflow_ = true;
    }
    if (size_only_ || overflow_) return;
    std::vector<float> values(n);
    TensorRng rng(options_.seed, authors);
    for (uint64_t i = 0; i < n; ++i) values[i] = f(rng, static_cast<int64_t>(i));
    const bool fla = options_.naming == Rwkv7Naming::kFla;
    if (fla && layout == Layout::kTransposed) {
      std::vector<float> t(n);
      const int64_t rows = shape[0], cols = shape[1];
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = values[r * cols + c];
      }
      values.swap(t);
      shape = {cols, rows};
    } else if (fla && layout == Layout::kFlatForFla) {
      shape = {static_cast<int64_t>(n)};
    }
    TensorToWrite t;
    t.name = fla ? AuthorsToFlaName(authors) : authors;
    t.dtype = options_.dtype;
    t.shape = std::move(shape);
    t.bytes.resize(bytes);
    for (uint64_t i = 0; i < n; ++i) {
      if (t.dtype == DType::kF32) {
        std::memcpy(t.bytes.data() + 4 * i, &values[i], 4);
      } else {
        const uint16_t h = F32ToBf16(values[i]);
        std::memcpy(t.bytes.data() + 2 * i, &h, 2);
      }
    }
    tensors_.push_back(std::move(t));
  }

  // Uniform with standard deviation `std`.
  void AddUniform(const std::string& authors, std::vector<int64_t> shape, Layout layout,
                  float std) {
    const float a = std * std::sqrt(3.0f);
    Add(authors, std::move(shape), layout, [a](TensorRng& r, int64_t) { return r.Uniform(-a, a); });
  }
  void AddRange(const std::string& authors, std::vector<int64_t> shape, Layout layout, float lo,
                float hi) {
    Add(authors, std::move(shape), layout,
        [lo, hi](TensorRng& r, int64_t) { return r.Uniform(lo, hi); });
  }
  void AddLayerNorm(const std::string& prefix, int64_t dim) {
    AddRange(prefix + ".weight", {dim}, Layout::kAsIs, 0.8f, 1.2f);
    AddRange(prefix + ".bias", {dim}, Layout::kAsIs, -0.1f, 0.1f);
  }

  std::vector<TensorToWrite>& tensors() { return tensors_; }
  std::optional<uint64_t> total_bytes() const {
    return overflow_ ? std::nullopt : std::optional<uint64_t>(total_);
  }

 private:
  const Rwkv7RandomOptions& options_;
  bool size_only_;
  bool overflow_ = false;
  uint64_t total_ = 0;
  std::vector<TensorToWrite> tensors_;
};

float InvSqrt(int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); }

// Every tensor, in the authors' names and layouts. Scales (why activations stay informative):
// projections 1/sqrt(fan_in) keep unit variance; LoRA inputs 1/sqrt(C) put tanh/sigmoid in their
// sensitive range; the gate's second factor 2/sqrt(Dg) makes g = sigmoid(.) @ g2 of order 1, so
// the attention branch is neither silenced nor saturated; decay biases spread over the authors'
// init range (w0 in [-6.5, -1.5]: decays 0.9..0.999), so the state remembers over many tokens.
void AddAllTensors(Builder& b, const Rwkv7Config& c) {
  const int64_t V = c.vocab_size, C = c.hidden_size, H = c.num_heads, N = c.head_size;
  const int64_t F = c.intermediate_size;
  const Layout flat = Layout::kFlatForFla, tr = Layout::kTransposed, as_is = Layout::kAsIs;
  b.AddUniform("emb.weight", {V, C}, as_is, 1.0f);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    const std::string att = p + "att.";
    if (i == 0) b.AddLayerNorm(p + "ln0", C);
    b.AddLayerNorm(p + "ln1", C);
    b.AddLayerNorm(p + "ln2", C);
    for (const char* m : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) {
      b.AddRange(att + m, {1, 1, C}, as_is, 0.0f, 1.0f);  // fla keeps [1,1,C] here
    }
    b.Add(att + "w0", {1, 1, C}, flat, [C](TensorRng& r, int64_t n) {
      const float x = static_cast<float>(n) / static_cast<float>(C > 1 ? C - 1 : 1);
      return -6.5f + 5.0f * std::pow(x, 0.85f) + r.Uniform(-0.1f, 0.1f);
    });
    b.AddUniform(att + "w1", {C, c.decay_lora}, tr, InvSqrt(C));
    b.AddUniform(att + "w2", {c.decay_lora, C}, tr, 0.5f * InvSqrt(c.decay_lora));
    b.AddRange(att + "a0", {1, 1, C}, flat, -0.5f, 0.5f);
    b.AddUniform(att + "a1", {C, c.a_lora}, tr, InvSqrt(C));
    b.AddUniform(att + "a2", {c.a_lora, C}, tr, 0.5f * InvSqrt(c.a_lora));
    if (i > 0) {  // block 0's value is v_first itself: no value-residual LoRA
      b.AddRange(att + "v0", {1, 1, C}, flat, 0.5f, 1.5f);
      b.AddUniform(att + "v1", {C, c.v_lora}, tr, InvSqrt(C));
      b.AddUniform(att + "v2", {c.v_lora, C}, tr, 0.5f * InvSqrt(c.v_lora));
    }
    b.AddUniform(att + "g1", {C, c.gate_lora}, tr, InvSqrt(C));
    b.AddUniform(att + "g2", {c.gate_lora, C}, tr, 2.0f * InvSqrt(c.gate_lora));
    b.AddRange(att + "k_k", {1, 1, C}, flat, 0.6f, 1.0f);
    b.AddRange(att + "k_a", {1, 1, C}, flat, 0.8f, 1.2f);
    b.AddRange(att + "r_k", {H, N}, as_is, -0.1f, 0.1f);
    for (const char* m : {"receptance", "key", "value", "output"}) {
      b.AddUniform(att + m + ".weight", {C, C}, as_is, InvSqrt(C));
    }
    b.AddLayerNorm(att + "ln_x", C);
    b.AddRange(p + "ffn.x_k", {1, 1, C}, flat, 0.0f, 1.0f);
    b.AddUniform(p + "ffn.key.weight", {F, C}, as_is, InvSqrt(C));
    b.AddUniform(p + "ffn.value.weight", {C, F}, as_is, InvSqrt(F));
  }
  b.AddLayerNorm("ln_out", C);
  b.AddUniform("head.weight", {V, C}, as_is, InvSqrt(C));
}

void CheckShape(const Rwkv7Config& c) {
  const int64_t C = c.hidden_size;
  if (c.vocab_size <= 0 || C <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.head_size <= 0 ||
      c.num_heads * c.head_size != C || c.intermediate_size <= 0 || c.decay_lora <= 0 ||
      c.a_lora <= 0 || c.gate_lora <= 0 || (c.num_layers > 1 && c.v_lora <= 0)) {
    throw UsageError("invalid RWKV-7 shape for init-model: hidden " + std::to_string(C) +
                     " must equal heads " + std::to_string(c.num_heads) + " x head size " +
                     std::to_string(c.head_size) + ", and every size and LoRA rank be positive");
  }
}

nlohmann::json ConfigJson(const Rwkv7Config& c, const Rwkv7RandomOptions& o) {
  nlohmann::json j;
  j["architectures"] = {"RWKV7ForCausalLM"};
  j["model_type"] = "rwkv7";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["head_dim"] = c.head_size;
  j["num_heads"] = c.num_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["decay_low_rank_dim"] = c.decay_lora;
  j["a_low_rank_dim"] = c.a_lora;
  j["v_low_rank_dim"] = c.v_lora;
  j["gate_low_rank_dim"] = c.gate_lora;
  j["hidden_act"] = "sqrelu";
  j["norm_bias"] = true;
  j["norm_eps"] = 1e-5;
  j["tie_word_embeddings"] = false;
  j["torch_dtype"] = o.dtype == DType::kF32 ? "float32" : "bfloat16";
  j["rwkv_embed_naming"] = o.naming == Rwkv7Naming::kFla ? "fla" : "authors";
  j["rwkv_embed_random_weights"] = true;
  return j;
}

}  // namespace

const std::vector<Rwkv7Preset>& Rwkv7Presets() {
  static const std::vector<Rwkv7Preset> presets = {
      Preset("goose-tiny", "C=128, 3 layers, 2 heads (the shape of shared/models/tiny-rwkv7-bf16)",
             128, 3, 512, 32, 32, 32, 64),
      Preset("goose-0.1b", "RWKV-7 Goose 0.1B shape: C=768, 12 layers, ranks 64/64/32/128", 768, 12,
             3072, 64, 64, 32, 128),
      Preset("goose-0.4b", "RWKV-7 Goose 0.4B shape: C=1024, 24 layers, ranks 64/64/32/128", 1024,
             24, 4096, 64, 64, 32, 128),
      Preset("goose-1.5b", "RWKV-7 Goose 1.5B shape: C=2048, 24 layers, ranks 96/96/64/256", 2048,
             24, 8192, 96, 96, 64, 256),
      Preset("goose-2.9b", "RWKV-7 Goose 2.9B shape: C=2560, 32 layers, ranks 96/96/64/320", 2560,
             32, 10240, 96, 96, 64, 320),
  };
  return presets;
}

const Rwkv7Preset* FindRwkv7Preset(std::string_view name) {
  for (const Rwkv7Preset& p : Rwkv7Presets()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::optional<uint64_t> Rwkv7RandomModelBytes(const Rwkv7Config& config, DType dtype) {
  CheckShape(config);
  Rwkv7RandomOptions o;
  o.dtype = dtype;
  Builder b(o, /*size_only=*/true);
  AddAllTensors(b, config);
  return b.total_bytes();
}

void WriteRandomRwkv7Model(const Rwkv7Config& config, const Rwkv7RandomOptions& options,
                           const std::filesystem::path& out_dir) {
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16) {
    throw UsageError("init-model writes RWKV-7 as f32 or bf16");
  }
  CheckShape(config);
  // Sizes first: nothing is allocated or written for a shape that cannot be held.
  const std::optional<uint64_t> bytes = Rwkv7RandomModelBytes(config, options.dtype);
  if (!bytes) throw UsageError("RWKV-7 model shape too large: its size overflows 64 bits");
  const std::string what = "init-model: an RWKV-7 checkpoint of vocab_size " +
                           std::to_string(config.vocab_size) + ", hidden_size " +
                           std::to_string(config.hidden_size) + " and " +
                           std::to_string(config.num_layers) + " layers";
  WriteStagedModelFolder(
      out_dir, options.force, *bytes, what, [&](const std::filesystem::path& dir) {
        Builder b(options, /*size_only=*/false);
        AddAllTensors(b, config);
        const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                             {"rwkv_embed", "random weights"}};
        WriteSafetensors(dir / "model.safetensors", b.tensors(), metadata);
        const std::filesystem::path cfg_path = dir / "config.json";
        std::ofstream cfg(cfg_path);
        cfg << ConfigJson(config, options).dump(2) << "\n";
        cfg.close();
        if (!cfg) throw IoError("cannot write " + cfg_path.string());
        if (!options.vocab.empty()) {
          std::error_code ec;
          std::filesystem::copy_file(options.vocab, dir / "rwkv_vocab_v20230424.txt", ec);
          if (ec) {
            throw IoError("cannot copy vocabulary " + options.vocab.string() + ": " + ec.message());
          }
        }
      });
}

}  // namespace rwkv_embed
