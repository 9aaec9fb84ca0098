// rwkv-embed init-model: a random-weight RWKV-6 (HF or authors' names) or RWKV-7 (fla or authors'
// names) checkpoint.
#include <iostream>
#include <optional>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "core/memory.h"
#include "model/rwkv6/rwkv6_random.h"
#include "model/rwkv7/rwkv7_random.h"

namespace rwkv_embed::cli {
namespace {

struct InitArgs {
  std::string preset = "tiny", dtype = "bf16", out, vocab, names = "hf", arch;
  uint64_t seed = 0;
  int shards = 1;
  int64_t vocab_size = 0;
  int64_t num_layers = 0;
  bool force = false;
};

// Shape overrides within the limits every loader enforces (either architecture).
void CheckOptionLimits(const InitArgs& a) {
  if (a.vocab_size > kMaxConfigVocab) {
    throw UsageError("init-model: --vocab-size " + std::to_string(a.vocab_size) +
                     " is above the limit " + std::to_string(kMaxConfigVocab) +
                     " (token ids are 32-bit)");
  }
  if (a.num_layers > kMaxConfigLayers) {
    throw UsageError("init-model: --num-layers " + std::to_string(a.num_layers) +
                     " is above the limit " + std::to_string(kMaxConfigLayers));
  }
}

// The requested size, checked before anything is allocated: the options that set it are named.
void CheckRequestedSize(const InitArgs& a, const ModelConfig& config, DType dtype) {
  CheckOptionLimits(a);
  std::string what = "init-model --preset " + a.preset + " --dtype " + a.dtype;
  if (a.vocab_size > 0) what += " --vocab-size " + std::to_string(a.vocab_size);
  if (a.num_layers > 0) what += " --num-layers " + std::to_string(a.num_layers);
  const std::optional<uint64_t> bytes = RandomModelBytes(config, dtype);
  if (!bytes) throw UsageError(what + ": the checkpoint size overflows 64 bits");
  RequireMemory(*bytes, what + " (the checkpoint is generated in memory)");
  RequireDiskSpace(*bytes, a.out, what);
}

// RWKV-7: goose-* presets (or --arch rwkv7 with "tiny" or a goose-* name), authors' or fla names.
int RunInitRwkv7(const InitArgs& a) {
  const Rwkv7Preset* preset = FindRwkv7Preset(a.preset);
  if (preset == nullptr) preset = FindRwkv7Preset("goose-" + a.preset);
  if (preset == nullptr) {
    std::string valid;
    for (const auto& p : Rwkv7Presets()) valid += (valid.empty() ? "" : "|") + p.name;
    throw UsageError("unknown RWKV-7 preset '" + a.preset + "' (valid: " + valid + ")");
  }
  CheckOptionLimits(a);
  Rwkv7Config config = preset->config;
  if (a.vocab_size > 0) config.vocab_size = a.vocab_size;
  if (a.num_layers > 0) config.num_layers = a.num_layers;
  if (a.shards != 1) throw UsageError("--shards is for RWKV-6; RWKV-7 is written as one file");
  Rwkv7RandomOptions o;
  if (a.dtype != "bf16" && a.dtype != "f32") throw UsageError("--dtype for RWKV-7: bf16 | f32");
  o.dtype = a.dtype == "f32" ? DType::kF32 : DType::kBF16;
  if (a.names == "authors" || a.names == "original") {
    o.naming = Rwkv7Naming::kAuthors;
  } else if (a.names == "fla" || a.names == "hf") {
    o.naming = Rwkv7Naming::kFla;
  } else {
    throw UsageError("--names for RWKV-7: authors | fla");
  }
  o.seed = a.seed;
  o.vocab = a.vocab;
  o.force = a.force;
  WriteRandomRwkv7Model(config, o, a.out);
  std::cerr << "init-model: wrote random-weight RWKV-7 " << preset->name << " (" << a.dtype << ", "
            << (o.naming == Rwkv7Naming::kFla ? "fla" : "authors") << " names, seed " << a.seed
            << ") to " << a.out << "\n";
  return 0;
}

int RunInit(const InitArgs& a) {
  if (a.arch == "rwkv7" || (a.arch.empty() && FindRwkv7Preset(a.preset) != nullptr)) {
    return RunInitRwkv7(a);
  }
  if (!a.arch.empty() && a.arch != "rwkv6") throw UsageError("--arch must be rwkv6 or rwkv7");
  ModelConfig config = FindModelPreset(a.preset).config;
  if (a.vocab_size > 0) config.vocab_size = a.vocab_size;
  if (a.num_layers > 0) config.num_layers = a.num_layers;
  RandomModelOptions o;
  if (a.dtype == "bf16") {
    o.dtype = DType::kBF16;
  } else if (a.dtype == "f32") {
    o.dtype = DType::kF32;
  } else if (a.dtype == "f16") {
    o.dtype = DType::kF16;
  } else {
    throw UsageError("--dtype must be bf16, f16 or f32");
  }
  if (a.names != "hf" && a.names != "original") throw UsageError("--names must be hf or original");
  o.original_names = a.names == "original";
  o.seed = a.seed;
  o.shards = a.shards;
  o.vocab = a.vocab;
  o.force = a.force;
  CheckRequestedSize(a, config, o.dtype);
  WriteRandomModel(config, o, a.out);
  std::cerr << "init-model: wrote random-weight " << a.preset << " (" << a.dtype << ", seed "
            << a.seed << ") to " << a.out << "\n";
  return 0;
}

}  // namespace

Command RegisterInitModel(CLI::App& app) {
  auto a = std::make_shared<InitArgs>();
  auto* sub = app.add_subcommand(
      "init-model", "Write a random-weight RWKV-6 or RWKV-7 model (HF/fla or authors' names)");
  std::string presets;
  for (const auto& p : ModelPresets()) presets += "\n  " + p.name + ": " + p.description;
  for (const auto& p : Rwkv7Presets()) presets += "\n  " + p.name + ": " + p.description;
  sub->add_option("--preset", a->preset, "model shape:" + presets)->capture_default_str();
  sub->add_option("--dtype", a->dtype, "bf16 | f16 | f32")->capture_default_str();
  sub->add_option("--out", a->out, "output folder")->required();
  sub->add_option("--seed", a->seed, "random seed")->capture_default_str();
  sub->add_option("--vocab", a->vocab, "vocabulary file to copy into the folder")
      ->check(CLI::ExistingFile);
  sub->add_option("--names", a->names,
                  "tensor names: hf | original (RWKV-6); fla (= hf) | authors (RWKV-7)")
      ->capture_default_str();
  sub->add_option("--arch", a->arch,
                  "rwkv6 | rwkv7 (default: from the preset; rwkv7 with tiny = goose-tiny)");
  sub->add_option("--shards", a->shards, "number of safetensors shards")->capture_default_str();
  sub->add_option("--vocab-size", a->vocab_size, "override the vocabulary size (tests)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--num-layers", a->num_layers,
                  "override the number of blocks (quick benchmarks of a real width)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--force", a->force,
                "write into a non-empty --out folder, replacing the model files there "
                "(config.json, model*.safetensors, the index; other files are kept)");
  return {sub, [a] { return RunInit(*a); }};
}

}  // namespace rwkv_embed::cli
