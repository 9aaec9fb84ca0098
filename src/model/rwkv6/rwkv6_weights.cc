#include "model/rwkv6/rwkv6_weights.h"

#include <optional>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "io/checkpoint.h"

namespace rwkv_embed {
std::string HfToOriginalName(std::string name) {
  auto replace = [&name](std::string_view from, std::string_view to) {
    if (auto pos = name.find(from); pos != std::string::npos) name.replace(pos, from.size(), to);
  };
  replace("rwkv.embeddings.", "emb.");
  replace("rwkv.blocks.", "blocks.");
  replace("rwkv.ln_out.", "ln_out.");
  replace(".attention.", ".att.");
  replace(".feed_forward.", ".ffn.");
  replace(".pre_ln.", ".ln0.");
  return name;
}

// Reads tensors by their HF names, whatever naming the checkpoint uses.
class Rwkv6Weights::Loader {
 public:
  Loader(Rwkv6Weights& m, const LoadOptions& options)
      : m_(m), reader_(m.store_, options, m.owned_, m.used_) {}

  const TensorView& Tensor(const std::string& hf_name) {
    return reader_.Tensor(StoredName(hf_name));
  }
  const TensorView& Matrix2d(const std::string& hf_name) {
    return reader_.WithRank(StoredName(hf_name), 2);
  }
  const TensorView& Shaped(const std::string& hf_name, const std::vector<int64_t>& shape) {
    return reader_.Shaped(StoredName(hf_name), shape);
  }
  std::vector<float> Vector(const std::string& hf_name, int64_t numel) {
    return reader_.Vector(StoredName(hf_name), numel);
  }
  LayerNormWeights LayerNorm(const std::string& prefix, int64_t dim) {
    return {Vector(prefix + ".weight", dim), Vector(prefix + ".bias", dim)};
  }
  kernels::WeightMatrix Matrix(const std::string& hf_name, int64_t rows, int64_t cols) {
    return reader_.Matrix(StoredName(hf_name), rows, cols);
  }
  kernels::WeightMatrix Transposed(const TensorView& t, int64_t rows, int64_t cols,
                                   int64_t offset_elems = 0) {
    return reader_.Transposed(t, rows, cols, offset_elems);
  }

  void LoadAll();

 private:
  // The checkpoint's own name for a tensor given by its HF name.
  std::string StoredName(const std::string& hf_name) const {
    return m_.naming_ == "hf" ? hf_name : HfToOriginalName(hf_name);
  }

  static std::string Where(const TensorView& t) { return TensorReader::Where(t); }

  Rwkv6Weights& m_;
  TensorReader reader_;
};

void Rwkv6Weights::Loader::LoadAll() {
  Rwkv6Config& c = m_.config_;
  // Sizes come from shapes; config.json (if any) must agree with them.
  const TensorView& emb = Tensor("rwkv.embeddings.weight");
  if (emb.shape.size() != 2) {
    throw ShapeError("tensor '" + emb.name + "' in " + Where(emb) + " has shape " +
                     emb.ShapeString() + ", expected [vocab, hidden]");
  }
  const int64_t V = emb.shape[0], C = emb.shape[1];
  int64_t L = 0;
  while (m_.store_.Find(StoredName("rwkv.blocks." + std::to_string(L) + ".ln1.weight"))) ++L;
  if (L == 0) throw ShapeError("no blocks found in " + m_.store_.Describe());
  const std::string b0 = "rwkv.blocks.0.";
  const TensorView& key0 = Matrix2d(b0 + "attention.key.weight");
  const TensorView& bonus0 = Matrix2d(b0 + "attention.time_faaaa");
  const TensorView& ffn_key0 = Matrix2d(b0 + "feed_forward.key.weight");
  const TensorView& maa_w1_0 = Matrix2d(b0 + "attention.time_maa_w1");
  const TensorView& decay_w1_0 = Matrix2d(b0 + "attention.time_decay_w1");
  const int64_t A = key0.shape[0], H = bonus0.shape[0], S = bonus0.shape[1];
  const int64_t F = ffn_key0.shape[0];
  if (maa_w1_0.shape[1] % 5 != 0) {
    throw ShapeError("tensor '" + maa_w1_0.name + "' has shape " + maa_w1_0.ShapeString() +
                     ": its second dimension must be 5 x the mix LoRA rank");
  }
  const int64_t E = maa_w1_0.shape[1] / 5, D = decay_w1_0.shape[1];
  if (H * S != A) {
    throw ShapeError("tensor '" + bonus0.name + "' has shape " + bonus0.ShapeString() +
                     " but attention size is " + std::to_string(A));
  }
  // The WKV state is A x S floats per block and sequence, sized from this shape alone: with
  // S <= C it stays below the block's own A x C key matrix, so a small file cannot ask for a
  // huge state (every released RWKV-6 has S = 64).
  if (S > C) {
    throw ShapeError("tensor '" + bonus0.name + "' has shape " + bonus0.ShapeString() +
                     ": head size " + std::to_string(S) + " exceeds the hidden size " +
                     std::to_string(C));
  }

  // A config field of 0 is one config.json did not give.
  auto check = [](const char* field, int64_t from_config, int64_t from_shapes, const char* t) {
    CheckConfigField(field, from_config != 0 ? std::optional(from_config) : std::nullopt,
                     from_shapes, t);
  };
  check("vocab_size", c.vocab_size, V, "embeddings");
  check("hidden_size", c.hidden_size, C, "embeddings");
  check("num_hidden_layers", c.num_layers, L, "blocks");
  check("attention_hidden_size", c.attention_hidden_size, A, "attention.key");
  check("head_size", c.head_size, S, "time_faaaa");
  check("intermediate_size", c.intermediate_size, F, "feed_forward.key");
  c.vocab_size = V;
  c.hidden_size = C;
  c.num_layers = L;
  c.attention_hidden_size = A;
  c.head_size = S;
  c.intermediate_size = F;
  c.time_mix_extra_dim = E;
  c.time_decay_extra_dim = D;

  m_.embeddings_ = Matrix("rwkv.embeddings.weight", V, C);
  m_.pre_ln_ = LayerNorm(b0 + "pre_ln", C);
  m_.ln_out_ = LayerNorm("rwkv.ln_out", C);
  m_.head_ = Matrix("head.weight", V, C);
  m_.blocks_.resize(L);
  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "rwkv.blocks." + std::to_string(i) + ".";
    const std::string att = p + "attention.", ffn = p + "feed_forward.";
    Rwkv6BlockWeights& b = m_.blocks_[i];
    b.ln1 = LayerNorm(p + "ln1", C);
    b.ln2 = LayerNorm(p + "ln2", C);
    b.maa_x = Vector(att + "time_maa_x", C);
    b.maa_w = Vector(att + "time_maa_w", C);
    b.maa_k = Vector(att + "time_maa_k", C);
    b.maa_v = Vector(att + "time_maa_v", C);
    b.maa_r = Vector(att + "time_maa_r", C);
    b.maa_g = Vector(att + "time_maa_g", C);
    b.maa_w1 = Transposed(Shaped(att + "time_maa_w1", {C, 5 * E}), C, 5 * E);
    const TensorView& w2 = Shaped(att + "time_maa_w2", {5, E, C});
    for (int j = 0; j < 5; ++j) b.maa_w2[j] = Transposed(w2, E, C, j * E * C);
    b.time_decay = Vector(att + "time_decay", A);
    b.decay_w1 = Transposed(Shaped(att + "time_decay_w1", {C, D}), C, D);
    b.decay_w2 = Transposed(Shaped(att + "time_decay_w2", {D, A}), D, A);
    b.bonus = Vector(att + "time_faaaa", A);
    b.receptance = Matrix(att + "receptance.weight", A, C);
    b.key = Matrix(att + "key.weight", A, C);
    b.value = Matrix(att + "value.weight", A, C);
    b.gate = Matrix(att + "gate.weight", A, C);
    b.output = Matrix(att + "output.weight", C, A);
    b.ln_x = LayerNorm(att + "ln_x", A);
    b.ffn_maa_k = Vector(ffn + "time_maa_k", C);
    b.ffn_maa_r = Vector(ffn + "time_maa_r", C);
    b.ffn_key = Matrix(ffn + "key.weight", F, C);
    b.ffn_receptance = Matrix(ffn + "receptance.weight", C, C);
    b.ffn_value = Matrix(ffn + "value.weight", C, F);
  }
}

std::unique_ptr<Rwkv6Weights> Rwkv6Weights::Load(const std::filesystem::path& dir,
                                                 const LoadOptions& options) {
  std::unique_ptr<Rwkv6Weights> m(new Rwkv6Weights());
  const auto config_path = std::filesystem::is_directory(dir) ? dir / "config.json" : "";
  if (!config_path.empty() && std::filesystem::exists(config_path)) {
    m->config_ = Rwkv6Config::FromJsonFile(config_path);
  } else {
    m->config_ = Rwkv6Config{};
    m->config_.vocab_size = m->config_.hidden_size = m->config_.num_layers = 0;
    m->config_.attention_hidden_size = m->config_.head_size = m->config_.intermediate_size = 0;
  }
  m->store_ = OpenCheckpoint(dir);
  if (m->store_.Find("rwkv.embeddings.weight")) {
    m->naming_ = "hf";
  } else if (m->store_.Find("emb.weight")) {
    m->naming_ = "original";
  } else {
    throw ShapeError("no token embeddings in " + m->store_.Describe() +
                     ": expected 'rwkv.embeddings.weight' (Hugging Face) or 'emb.weight' "
                     "(original RWKV names)");
  }
  Loader(*m, options).LoadAll();
  return m;
}

std::string Rwkv6Weights::Describe() const {
  std::ostringstream os;
  os << "RWKV-6 " << config_.num_layers << " layers, C=" << config_.hidden_size
     << ", heads=" << config_.num_heads() << "x" << config_.head_size
     << ", F=" << config_.intermediate_size << ", LoRA " << config_.time_mix_extra_dim << "/"
     << config_.time_decay_extra_dim << ", " << DTypeName(embeddings_.dtype) << " (" << naming_
     << " names) from " << store_.Describe() << (config_.random_weights ? " [RANDOM WEIGHTS]" : "");
  return os.str();
}

}  // namespace rwkv_embed
