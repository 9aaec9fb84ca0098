#include "model/rwkv7/rwkv7_weights.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "io/checkpoint.h"

namespace rwkv_embed {

std::string AuthorsToFlaName(const std::string& name) {
  static const std::map<std::string, std::string> kTop = {
      {"emb.weight", "model.embeddings.weight"},
      {"ln_out.weight", "model.norm.weight"},
      {"ln_out.bias", "model.norm.bias"},
      {"head.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string> kBlock = {
      {"ln0.weight", "pre_norm.weight"},           {"ln0.bias", "pre_norm.bias"},
      {"ln1.weight", "attn_norm.weight"},          {"ln1.bias", "attn_norm.bias"},
      {"ln2.weight", "ffn_norm.weight"},           {"ln2.bias", "ffn_norm.bias"},
      {"att.w0", "attn.w_lora.lora.2.bias"},       {"att.a0", "attn.a_lora.lora.2.bias"},
      {"att.v0", "attn.v_lora.lora.2.bias"},       {"att.w1", "attn.w_lora.lora.0.weight"},
      {"att.a1", "attn.a_lora.lora.0.weight"},     {"att.v1", "attn.v_lora.lora.0.weight"},
      {"att.g1", "attn.g_lora.lora.0.weight"},     {"att.w2", "attn.w_lora.lora.2.weight"},
      {"att.a2", "attn.a_lora.lora.2.weight"},     {"att.v2", "attn.v_lora.lora.2.weight"},
      {"att.g2", "attn.g_lora.lora.2.weight"},     {"att.receptance.weight", "attn.r_proj.weight"},
      {"att.key.weight", "attn.k_proj.weight"},    {"att.value.weight", "attn.v_proj.weight"},
      {"att.output.weight", "attn.o_proj.weight"}, {"att.ln_x.weight", "attn.g_norm.weight"},
      {"att.ln_x.bias", "attn.g_norm.bias"},
  };
  if (auto it = kTop.find(name); it != kTop.end()) return it->second;
  if (!name.starts_with("blocks.")) return name;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return name;
  const std::string layer = "model.layers." + name.substr(7, dot - 7) + ".";
  const std::string rest = name.substr(dot + 1);
  if (auto it = kBlock.find(rest); it != kBlock.end()) return layer + it->second;
  if (rest.starts_with("att.")) return layer + "attn." + rest.substr(4);
  return layer + rest;  // ffn.x_k, ffn.key.weight, ffn.value.weight
}

namespace {

// What a config.json may say about an RWKV-7 model. Only fla/HF fields are read (RWKV-LM ships
// no config; a folder's documenting config.json with other fields is ignored).
struct JsonHints {
  std::optional<int64_t> vocab_size, hidden_size, num_layers, head_dim, num_heads,
      intermediate_size, decay_lora, a_lora, v_lora, gate_lora;
  std::optional<double> norm_eps;
  bool norm_bias = true;
  bool random_weights = false;
};

JsonHints ReadConfig(const std::filesystem::path& path) {
  JsonHints h;
  std::ifstream in(path);
  if (!in) throw IoError("cannot open model config " + path.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string() + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw FormatError(path.string() + ": expected a JSON object");
  auto integer = [&](const char* field, std::optional<int64_t>& out) {
    if (!j.contains(field) || j[field].is_null()) return;
    if (!j[field].is_number_integer() || j[field].get<int64_t>() <= 0) {
      throw FormatError(path.string() + ": field '" + field + "' must be a positive integer");
    }
    out = j[field].get<int64_t>();
  };
  integer("vocab_size", h.vocab_size);
  integer("hidden_size", h.hidden_size);
  integer("num_hidden_layers", h.num_layers);
  integer("head_dim", h.head_dim);
  integer("num_heads", h.num_heads);
  integer("intermediate_size", h.intermediate_size);
  integer("decay_low_rank_dim", h.decay_lora);
  integer("a_low_rank_dim", h.a_lora);
  integer("v_low_rank_dim", h.v_lora);
  integer("gate_low_rank_dim", h.gate_lora);
  if (j.contains("norm_eps") && !j["norm_eps"].is_null()) {
    if (!j["norm_eps"].is_number() || j["norm_eps"].get<double>() <= 0) {
      throw FormatError(path.string() + ": field 'norm_eps' must be a positive number");
    }
    h.norm_eps = j["norm_eps"].get<double>();
  }
  if (j.contains("norm_bias") && j["norm_bias"].is_boolean()) h.norm_bias = j["norm_bias"];
  h.random_weights = j.value("rwkv_embed_random_weights", false);
  return h;
}

}  // namespace

class Rwkv7Weights::Loader {
 public:
  Loader(Rwkv7Weights& m, const LoadOptions& options, JsonHints hints)
      : m_(m), reader_(m.store_, options, m.owned_, m.used_), hints_(std::move(hints)) {}

  void LoadAll();

 private:
  // The checkpoint's own name for a tensor given by its authors' name.
  std::string Stored(const std::string& authors) const {
    return m_.naming_ == Rwkv7Naming::kFla ? AuthorsToFlaName(authors) : m_.prefix_ + authors;
  }
  bool Has(const std::string& authors) const { return m_.store_.Find(Stored(authors)) != nullptr; }
  std::vector<float> Vector(const std::string& authors, int64_t numel) {
    return reader_.Vector(Stored(authors), numel);
  }
  LayerNormWeights LayerNorm(const std::string& prefix, int64_t dim) {
    LayerNormWeights ln;
    ln.weight = Vector(prefix + ".weight", dim);
    if (!hints_.norm_bias && !Has(prefix + ".bias")) {
      ln.bias.assign(dim, 0.0f);  // fla norm_bias: false
    } else {
      ln.bias = Vector(prefix + ".bias", dim);
    }
    return ln;
  }
  kernels::WeightMatrix Matrix(const std::string& authors, int64_t rows, int64_t cols) {
    return reader_.Matrix(Stored(authors), rows, cols);
  }
  // LoRA factor `authors` (e.g. "blocks.3.att.w1") used as x @ W with W [in, out]; returned as
  // [out, in]. The authors store [in, out]; fla stores the Linear weight [out, in].
  kernels::WeightMatrix Lora(const std::string& authors, int64_t in, int64_t out) {
    if (m_.naming_ == Rwkv7Naming::kFla) return Matrix(authors, out, in);
    return reader_.Transposed(reader_.Shaped(Stored(authors), {in, out}), in, out);
  }
  // The rank D of LoRA `w1`-style factor `authors` ([C, D] authors, [D, C] fla).
  int64_t Rank(const std::string& authors, int64_t C) {
    const TensorView& t = reader_.WithRank(Stored(authors), 2);
    const int64_t c_dim = m_.naming_ == Rwkv7Naming::kFla ? t.shape[1] : t.shape[0];
    if (c_dim != C) {
      throw ShapeError("tensor '" + t.name + "' in " + TensorReader::Where(t) + " has shape " +
                       t.ShapeString() + ": expected the hidden size " + std::to_string(C) +
                       (m_.naming_ == Rwkv7Naming::kFla ? " as its second" : " as its first") +
                       " dimension");
    }
    return m_.naming_ == Rwkv7Naming::kFla ? t.shape[0] : t.shape[1];
  }
  void LoadBlock(int64_t i, Rwkv7BlockWeights& b);

  Rwkv7Weights& m_;
  TensorReader reader_;
  JsonHints hints_;
};

void Rwkv7Weights::Loader::LoadAll() {
  Rwkv7Config& c = m_.config_;
  const TensorView& emb = reader_.WithRank(Stored("emb.weight"), 2);
  const int64_t V = emb.shape[0], C = emb.shape[1];
  int64_t L = 0;
  while (Has("blocks." + std::to_string(L) + ".ln1.weight")) ++L;
  if (L == 0) throw ShapeError("no RWKV-7 blocks found in " + m_.store_.Describe());
  const TensorView& r_k = reader_.WithRank(Stored("blocks.0.att.r_k"), 2);
  const int64_t H = r_k.shape[0], N = r_k.shape[1];
  if (H * N != C) {
    throw ShapeError("tensor '" + r_k.name + "' in " + TensorReader::Where(r_k) + " has shape " +
                     r_k.ShapeString() + " ([heads, head size]) but the hidden size is " +
                     std::to_string(C));
  }
  const TensorView& ffn_key = reader_.WithRank(Stored("blocks.0.ffn.key.weight"), 2);
  c.vocab_size = V;
  c.hidden_size = C;
  c.num_layers = L;
  c.num_heads = H;
  c.head_size = N;
  c.intermediate_size = ffn_key.shape[0];
  c.decay_lora = Rank("blocks.0.att.w1", C);
  c.a_lora = Rank("blocks.0.att.a1", C);
  c.gate_lora = Rank("blocks.0.att.g1", C);
  c.v_lora = L > 1 ? Rank("blocks.1.att.v1", C) : 0;
  c.random_weights = hints_.random_weights;
  if (m_.naming_ == Rwkv7Naming::kFla) {
    const double norm_eps = hints_.norm_eps.value_or(1e-5);
    c.layer_norm_epsilon = norm_eps;
    c.group_norm_epsilon = static_cast<double>(N) * norm_eps;
  } else {
    c.layer_norm_epsilon = 1e-5;
    c.group_norm_epsilon = 64e-5;
  }
  CheckConfigField("vocab_size", hints_.vocab_size, V, "embeddings");
  CheckConfigField("hidden_size", hints_.hidden_size, C, "embeddings");
  CheckConfigField("num_hidden_layers", hints_.num_layers, L, "blocks");
  CheckConfigField("head_dim", hints_.head_dim, N, "attn.r_k");
  CheckConfigField("num_heads", hints_.num_heads, H, "attn.r_k");
  CheckConfigField("intermediate_size", hints_.intermediate_size, c.intermediate_size, "ffn.key");
  CheckConfigField("decay_low_rank_dim", hints_.decay_lora, c.decay_lora, "w_lora");
  CheckConfigField("a_low_rank_dim", hints_.a_lora, c.a_lora, "a_lora");
  if (L > 1) CheckConfigField("v_low_rank_dim", hints_.v_lora, c.v_lora, "v_lora");
  CheckConfigField("gate_low_rank_dim", hints_.gate_lora, c.gate_lora, "g_lora");

  m_.embeddings_ = Matrix("emb.weight", V, C);
  m_.ln0_ = LayerNorm("blocks.0.ln0", C);
  m_.ln_out_ = LayerNorm("ln_out", C);
  if (Has("head.weight")) m_.head_ = Matrix("head.weight", V, C);
  m_.blocks_.resize(L);
  for (int64_t i = 0; i < L; ++i) LoadBlock(i, m_.blocks_[i]);
}

void Rwkv7Weights::Loader::LoadBlock(int64_t i, Rwkv7BlockWeights& b) {
  const Rwkv7Config& c = m_.config_;
  const int64_t C = c.hidden_size, F = c.intermediate_size;
  const std::string p = "blocks." + std::to_string(i) + ".", att = p + "att.", ffn = p + "ffn.";
  b.ln1 = LayerNorm(p + "ln1", C);
  b.ln2 = LayerNorm(p + "ln2", C);
  b.x_r = Vector(att + "x_r", C);
  b.x_w = Vector(att + "x_w", C);
  b.x_k = Vector(att + "x_k", C);
  b.x_v = Vector(att + "x_v", C);
  b.x_a = Vector(att + "x_a", C);
  b.x_g = Vector(att + "x_g", C);
  b.w1 = Lora(att + "w1", C, c.decay_lora);
  b.w2 = Lora(att + "w2", c.decay_lora, C);
  b.w0 = Vector(att + "w0", C);
  b.a1 = Lora(att + "a1", C, c.a_lora);
  b.a2 = Lora(att + "a2", c.a_lora, C);
  b.a0 = Vector(att + "a0", C);
  // Block 0's value is v_first itself: it has no value-residual LoRA (train_temp checkpoints
  // carry an unused blocks.0.att.v0/v1/v2, which is ignored).
  if (i > 0) {
    b.v1 = Lora(att + "v1", C, c.v_lora);
    b.v2 = Lora(att + "v2", c.v_lora, C);
    b.v0 = Vector(att + "v0", C);
  }
  b.g1 = Lora(att + "g1", C, c.gate_lora);
  b.g2 = Lora(att + "g2", c.gate_lora, C);
  b.k_k = Vector(att + "k_k", C);
  b.k_a = Vector(att + "k_a", C);
  b.r_k = Vector(att + "r_k", C);
  b.receptance = Matrix(att + "receptance.weight", C, C);
  b.key = Matrix(att + "key.weight", C, C);
  b.value = Matrix(att + "value.weight", C, C);
  b.output = Matrix(att + "output.weight", C, C);
  b.ln_x = LayerNorm(att + "ln_x", C);
  b.ffn_x_k = Vector(ffn + "x_k", C);
  b.ffn_key = Matrix(ffn + "key.weight", F, C);
  b.ffn_value = Matrix(ffn + "value.weight", C, F);
}

std::unique_ptr<Rwkv7Weights> Rwkv7Weights::Load(const std::filesystem::path& path,
                                                 const LoadOptions& options) {
  std::unique_ptr<Rwkv7Weights> m(new Rwkv7Weights());
  JsonHints hints;
  if (std::filesystem::is_directory(path) && std::filesystem::exists(path / "config.json")) {
    hints = ReadConfig(path / "config.json");
  }
  m->store_ = OpenCheckpoint(path);
  if (m->store_.Find("model.embeddings.weight")) {
    m->naming_ = Rwkv7Naming::kFla;
  } else if (m->store_.Find("emb.weight")) {
    m->naming_ = Rwkv7Naming::kAuthors;
  } else if (m->store_.Find("rwkv.emb.weight")) {
    m->naming_ = Rwkv7Naming::kAuthors;
    m->prefix_ = "rwkv.";
  } else {
    throw ShapeError("no token embeddings in " + m->store_.Describe() +
                     ": expected 'model.embeddings.weight' (fla/Hugging Face RWKV-7) or "
                     "'emb.weight' (RWKV-LM names)");
  }
  Loader(*m, options, std::move(hints)).LoadAll();
  return m;
}

const std::string& Rwkv7Weights::naming_name() const {
  static const std::string kAuthorsName = "authors' RWKV-LM", kFlaName = "fla/HF";
  return naming_ == Rwkv7Naming::kFla ? kFlaName : kAuthorsName;
}

std::string Rwkv7Weights::Describe() const {
  const Rwkv7Config& c = config_;
  std::ostringstream os;
  os << "RWKV-7 " << c.num_layers << " layers, C=" << c.hidden_size << ", heads=" << c.num_heads
     << "x" << c.head_size << ", F=" << c.intermediate_size << ", LoRA w/a/v/g " << c.decay_lora
     << "/" << c.a_lora << "/" << c.v_lora << "/" << c.gate_lora << ", GroupNorm eps "
     << c.group_norm_epsilon << ", " << DTypeName(embeddings_.dtype) << " (" << naming_name()
     << " names) from " << store_.Describe() << (c.random_weights ? " [RANDOM WEIGHTS]" : "")
     << (has_head() ? "" : " [no LM head]");
  return os.str();
}

}  // namespace rwkv_embed
