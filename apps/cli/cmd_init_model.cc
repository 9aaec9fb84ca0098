// rwkv-embed init-model: a random-weight RWKV-6 checkpoint in the HF layout.
#include <iostream>
#include <optional>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "core/memory.h"
#include "model/random_init.h"

namespace rwkv_embed::cli {
namespace {

struct InitArgs {
  std::string preset = "tiny", dtype = "bf16", out, vocab, names = "hf";
  uint64_t seed = 0;
  int shards = 1;
  int64_t vocab_size = 0;
  int64_t num_layers = 0;
  bool force = false;
};

// The requested size, checked before anything is allocated: the options that set it are named.
void CheckRequestedSize(const InitArgs& a, const ModelConfig& config, DType dtype) {
  if (a.vocab_size > kMaxConfigVocab) {
    throw UsageError("init-model: --vocab-size " + std::to_string(a.vocab_size) +
                     " is above the limit " + std::to_string(kMaxConfigVocab) +
                     " (token ids are 32-bit)");
  }
  if (a.num_layers > kMaxConfigLayers) {
    throw UsageError("init-model: --num-layers " + std::to_string(a.num_layers) +
                     " is above the limit " + std::to_string(kMaxConfigLayers));
  }
  std::string what = "init-model --preset " + a.preset + " --dtype " + a.dtype;
  if (a.vocab_size > 0) what += " --vocab-size " + std::to_string(a.vocab_size);
  if (a.num_layers > 0) what += " --num-layers " + std::to_string(a.num_layers);
  const std::optional<uint64_t> bytes = RandomModelBytes(config, dtype);
  if (!bytes) throw UsageError(what + ": the checkpoint size overflows 64 bits");
  RequireMemory(*bytes, what + " (the checkpoint is generated in memory)");
  RequireDiskSpace(*bytes, a.out, what);
}

int RunInit(const InitArgs& a) {
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
  auto* sub = app.add_subcommand("init-model",
                                 "Write a random-weight RWKV-6 model in the Hugging Face layout");
  std::string presets;
  for (const auto& p : ModelPresets()) presets += "\n  " + p.name + ": " + p.description;
  sub->add_option("--preset", a->preset, "model shape:" + presets)->capture_default_str();
  sub->add_option("--dtype", a->dtype, "bf16 | f16 | f32")->capture_default_str();
  sub->add_option("--out", a->out, "output folder")->required();
  sub->add_option("--seed", a->seed, "random seed")->capture_default_str();
  sub->add_option("--vocab", a->vocab, "vocabulary file to copy into the folder")
      ->check(CLI::ExistingFile);
  sub->add_option("--names", a->names, "tensor names: hf | original")->capture_default_str();
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
