#include "model/rwkv6/rwkv6_random.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/memory.h"
#include "io/safetensors.h"
#include "model/rwkv6/rwkv6_weights.h"

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

// Generates the tensors, or (size_only) only adds up their sizes without allocating.
class Writer {
 public:
  Writer(const RandomModelOptions& o, bool original, bool size_only = false)
      : options_(o), original_(original), size_only_(size_only) {}

  // Fills a tensor element by element from f(rng, index).
  template <typename F>
  void Add(const std::string& hf_name, std::vector<int64_t> shape, F f) {
    std::optional<uint64_t> n = 1;
    for (int64_t d : shape) n = n ? CheckedMul(*n, static_cast<uint64_t>(d)) : n;
    const std::optional<uint64_t> bytes = n ? CheckedMul(*n, DTypeSize(options_.dtype)) : n;
    total_bytes_ = bytes && total_bytes_ ? CheckedAdd(*total_bytes_, *bytes) : std::nullopt;
    if (size_only_) return;
    TensorToWrite t;
    t.name = original_ ? HfToOriginalName(hf_name) : hf_name;
    t.dtype = options_.dtype;
    t.shape = std::move(shape);
    t.bytes.resize(static_cast<size_t>(*bytes));  // WriteRandomModel checked the total first
    TensorRng rng(options_.seed, hf_name);
    std::byte* out = t.bytes.data();
    for (int64_t i = 0; i < static_cast<int64_t>(*n); ++i) {
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
  std::optional<uint64_t> total_bytes() const { return total_bytes_; }

 private:
  const RandomModelOptions& options_;
  bool original_;
  bool size_only_;
  std::vector<TensorToWrite> tensors_;
  std::optional<uint64_t> total_bytes_ = 0;
};

void AddLayerNorm(Writer& w, const std::string& prefix, int64_t dim) {
  w.Add(prefix + ".weight", {dim}, [](TensorRng& r, int64_t) { return r.Uniform(0.8f, 1.2f); });
  w.Add(prefix + ".bias", {dim}, [](TensorRng& r, int64_t) { return r.Uniform(-0.1f, 0.1f); });
}

// Every tensor of the checkpoint, in the HF layout.
void AddAllTensors(Writer& w, const ModelConfig& c) {
  const int64_t V = c.vocab_size, C = c.hidden_size, A = c.attention_hidden_size;
  const int64_t S = c.head_size, H = A / S, F = c.intermediate_size;
  const int64_t E = c.time_mix_extra_dim, D = c.time_decay_extra_dim;
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

std::optional<uint64_t> RandomModelBytes(const ModelConfig& config, DType dtype) {
  // Sized from a one- and a two-block model (the first block also holds pre_ln), so that an
  // absurd num_layers costs nothing to size.
  RandomModelOptions o;
  o.dtype = dtype;
  const auto bytes_with = [&](int64_t layers) {
    ModelConfig c = config;
    c.num_layers = layers;
    Writer w(o, false, /*size_only=*/true);
    AddAllTensors(w, c);
    return w.total_bytes();
  };
  const std::optional<uint64_t> one = bytes_with(1), two = bytes_with(2);
  if (!one || !two || config.num_layers < 1) return std::nullopt;
  const std::optional<uint64_t> blocks =
      CheckedMul(*two - *one, static_cast<uint64_t>(config.num_layers - 1));
  return blocks ? CheckedAdd(*one, *blocks) : std::nullopt;
}

namespace {

constexpr const char* kVocabName = "rwkv_vocab_v20230424.txt";
constexpr const char* kStagingName = ".init-model.partial";

std::string Quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// Files of a model folder that hold a checkpoint init-model writes: removed by --force when the
// new model does not replace them. A vocabulary is only ever replaced by a new copy.
bool OwnedByInitModel(const std::string& name) {
  return name == "config.json" || name == "model.safetensors.index.json" ||
         (name.starts_with("model") && name.ends_with(".safetensors"));
}

void CheckShape(const ModelConfig& c) {
  const auto in_range = [](int64_t v, int64_t max) { return v >= 1 && v <= max; };
  if (!in_range(c.vocab_size, kMaxConfigVocab) || !in_range(c.hidden_size, kMaxConfigDim) ||
      !in_range(c.num_layers, kMaxConfigLayers) ||
      !in_range(c.attention_hidden_size, kMaxConfigDim) || !in_range(c.head_size, kMaxConfigDim) ||
      c.attention_hidden_size % c.head_size != 0 || !in_range(c.intermediate_size, kMaxConfigDim) ||
      !in_range(c.time_mix_extra_dim, kMaxConfigDim) ||
      !in_range(c.time_decay_extra_dim, kMaxConfigDim)) {
    throw UsageError("init-model: invalid model shape (vocab_size " + std::to_string(c.vocab_size) +
                     ", hidden_size " + std::to_string(c.hidden_size) + ", num_layers " +
                     std::to_string(c.num_layers) + "): vocab_size must be in 1.." +
                     std::to_string(kMaxConfigVocab) + ", num_layers in 1.." +
                     std::to_string(kMaxConfigLayers) + ", other sizes in 1.." +
                     std::to_string(kMaxConfigDim));
  }
}

// The files of the checkpoint, written into `dir`.
void WriteModelFiles(const ModelConfig& c, const RandomModelOptions& options,
                     const std::filesystem::path& dir) {
  Writer w(options, options.original_names);
  AddAllTensors(w, c);
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"rwkv_embed", "random weights"}};
  auto& tensors = w.tensors();
  if (options.shards == 1) {
    WriteSafetensors(dir / "model.safetensors", tensors, metadata);
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
      WriteSafetensors(dir / file, parts[s], metadata);
      parts[s] = {};  // written: free it
    }
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    std::ofstream out(dir / "model.safetensors.index.json");
    out << index.dump(2) << "\n";
    out.close();
    if (!out) throw IoError("cannot write " + Quote(dir / "model.safetensors.index.json"));
  }
  ModelConfig written = c;
  written.random_weights = true;
  std::ofstream cfg(dir / "config.json");
  cfg << written.ToJson().dump(2) << "\n";
  cfg.close();
  if (!cfg) throw IoError("cannot write " + Quote(dir / "config.json"));
  if (!options.vocab.empty()) {
    std::error_code ec;
    std::filesystem::copy_file(options.vocab, dir / kVocabName, ec);
    if (ec) {
      throw IoError("cannot copy vocabulary " + Quote(options.vocab) + " to " +
                    Quote(dir / kVocabName) + ": " + ec.message());
    }
  }
}

// Refuses an out_dir that holds anything but a leftover staging folder, unless force.
void CheckOutDir(const std::filesystem::path& out_dir, bool force) {
  std::error_code ec;
  if (!std::filesystem::exists(out_dir, ec)) return;
  if (!std::filesystem::is_directory(out_dir, ec)) {
    throw UsageError("init-model: --out " + Quote(out_dir) + " exists and is not a folder");
  }
  if (force) return;
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(out_dir, ec)) {
    if (e.path().filename() != kStagingName) found.push_back(e.path().filename().string());
  }
  if (ec) throw IoError("cannot list " + Quote(out_dir) + ": " + ec.message());
  if (found.empty()) return;
  std::sort(found.begin(), found.end());
  std::string list;
  for (size_t i = 0; i < found.size() && i < 5; ++i) list += (i ? ", " : "") + found[i];
  if (found.size() > 5) list += ", ... (" + std::to_string(found.size()) + " entries)";
  throw UsageError("init-model: output folder " + Quote(out_dir) + " is not empty (" + list +
                   "); pass --force to replace the model files init-model writes there "
                   "(other files are kept)");
}

// Moves the staged files over out_dir's, then removes the owned files the new model does not
// have (a single model.safetensors replaced by shards, or the other way round). Renames within
// one file system: the old model stays complete until its files are replaced.
void Commit(const std::filesystem::path& stage, const std::filesystem::path& out_dir) {
  std::error_code ec;
  std::set<std::string> written;
  std::vector<std::filesystem::path> staged;
  for (const auto& e : std::filesystem::directory_iterator(stage, ec)) staged.push_back(e.path());
  if (ec) throw IoError("cannot list " + Quote(stage) + ": " + ec.message());
  for (const auto& from : staged) {  // a rename onto a folder would fail half-way: check first
    const std::filesystem::path to = out_dir / from.filename();
    if (std::filesystem::is_directory(std::filesystem::symlink_status(to, ec))) {
      throw IoError("cannot write " + Quote(to) + ": a folder of that name is in the way");
    }
  }
  for (const auto& from : staged) {
    const std::filesystem::path to = out_dir / from.filename();
    std::filesystem::rename(from, to, ec);
    if (ec) throw IoError("cannot move " + Quote(from) + " to " + Quote(to) + ": " + ec.message());
    written.insert(from.filename().string());
  }
  std::filesystem::remove(stage, ec);
  std::vector<std::filesystem::path> stale;
  for (const auto& e : std::filesystem::directory_iterator(out_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!written.contains(name) && OwnedByInitModel(name)) stale.push_back(e.path());
  }
  for (const auto& p : stale) {
    if (!std::filesystem::remove(p, ec) && ec) {
      throw IoError("cannot remove the old " + Quote(p) + ": " + ec.message());
    }
  }
}

}  // namespace

void WriteRandomModel(const ModelConfig& c, const RandomModelOptions& options,
                      const std::filesystem::path& out_dir) {
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16 &&
      options.dtype != DType::kF16) {
    throw UsageError("init-model dtype must be f32, f16 or bf16");
  }
  if (options.shards < 1 || options.shards > 99999) {
    throw UsageError("init-model: --shards must be in 1..99999");
  }
  CheckShape(c);
  const std::optional<uint64_t> bytes = RandomModelBytes(c, options.dtype);
  const std::string what =
      "init-model: a checkpoint of vocab_size " + std::to_string(c.vocab_size) + ", hidden_size " +
      std::to_string(c.hidden_size) + " and " + std::to_string(c.num_layers) + " layers";
  if (!bytes) throw UsageError(what + " has a size beyond 64 bits");
  WriteStagedModelFolder(
      out_dir, options.force, *bytes, what,
      [&](const std::filesystem::path& stage) { WriteModelFiles(c, options, stage); });
}

void WriteStagedModelFolder(const std::filesystem::path& out_dir, bool force, uint64_t bytes,
                            const std::string& what,
                            const std::function<void(const std::filesystem::path&)>& write) {
  RequireMemory(bytes, what + " (generated in memory)");
  RequireDiskSpace(bytes, out_dir, what);
  CheckOutDir(out_dir, force);

  std::error_code ec;
  const bool created = !std::filesystem::exists(out_dir, ec);
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw IoError("cannot create " + Quote(out_dir) + ": " + ec.message());
  const std::filesystem::path stage = out_dir / kStagingName;
  std::filesystem::remove_all(stage, ec);  // left by an interrupted run: ours by its name
  std::filesystem::create_directory(stage, ec);
  if (ec) throw IoError("cannot create " + Quote(stage) + ": " + ec.message());
  try {
    write(stage);
    Commit(stage, out_dir);
  } catch (...) {
    std::filesystem::remove_all(stage, ec);
    if (created) std::filesystem::remove(out_dir, ec);  // only if still empty
    throw;
  }
}

}  // namespace rwkv_embed
