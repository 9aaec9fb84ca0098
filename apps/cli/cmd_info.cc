// rwkv-embed info: what a model folder holds, and the layer numbering to use with it; with
// --gemm, the CPU's kernels and the GEMM path measured fastest for each weight shape.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_autotune.h"
#include "model/layer_spec.h"
#include "model/load_model.h"
#include "model/rwkv6/rwkv6.h"
#include "model/rwkv7/rwkv7.h"

namespace rwkv_embed::cli {
namespace {

struct InfoArgs {
  std::string model, precision = "both", gemm_path;
  bool check_weights = false, gemm = false;
  int threads = 0;
};

// The sizes each architecture adds to Describe().
void PrintShapes(const SequenceModel& m) {
  if (const auto* r6 = dynamic_cast<const Rwkv6Model*>(&m)) {
    const Rwkv6Config& c = r6->config();
    std::cout << "vocab_size " << c.vocab_size << ", hidden " << c.hidden_size << ", attention "
              << c.attention_hidden_size << ", intermediate " << c.intermediate_size
              << ", group-norm eps " << c.group_norm_epsilon() << "\n";
  } else if (const auto* r7 = dynamic_cast<const Rwkv7Model*>(&m)) {
    const Rwkv7Config& c = r7->config();
    std::cout << "vocab_size " << c.vocab_size << ", hidden " << c.hidden_size << ", heads "
              << c.num_heads << " x " << c.head_size << ", intermediate " << c.intermediate_size
              << ", LoRA ranks decay " << c.decay_lora << " / a " << c.a_lora << " / v " << c.v_lora
              << " / gate " << c.gate_lora << ", layer-norm eps " << c.layer_norm_epsilon
              << ", group-norm eps " << c.group_norm_epsilon << "\n";
  }
}

void PrintModel(const InfoArgs& a) {
  LoadOptions load;
  load.check_finite = a.check_weights;
  const auto m = LoadModel(a.model, load);
  std::cout << m->Describe() << "\n"
            << "weights: " << m->checkpoint_bytes() << " bytes"
            << (a.check_weights ? " (all finite)" : "") << "\n";
  PrintShapes(*m);
  std::cout << "layers:\n";
  const LayerNumbering numbering = m->layer_numbering();
  for (int l = 0; l <= numbering.last(); ++l) std::cout << "  " << numbering.Label(l) << "\n";
}

// Registers the model's weight shapes with the autotuner (a one-token forward at each precision
// asked for) and measures every m range of them.
void TuneModel(const InfoArgs& a) {
  const auto model = LoadModel(a.model);
  TokenBatch batch;
  const int32_t token = 0;
  batch.Add(std::span(&token, 1));
  for (const char* p : {"f32", "bf16"}) {
    if (a.precision != "both" && a.precision != p) continue;
    ForwardOptions fo;
    fo.precision =
        std::string(p) == "bf16" ? kernels::MatMulPrecision::kBF16 : kernels::MatMulPrecision::kF32;
    model->Forward(batch, fo);
  }
  kernels::TuneSeenGemmShapes();
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

void PrintGemm(const InfoArgs& a) {
  if (a.precision != "both" && a.precision != "f32" && a.precision != "bf16") {
    throw UsageError("--precision must be f32, bf16 or both");
  }
  if (!a.model.empty()) TuneModel(a);
  const auto& f = kernels::DetectCpuFeatures();
  std::cout << "cpu: " << kernels::CpuIdentity() << "\n"
            << "features: " << kernels::DescribeCpuFeatures(f) << "\n"
            << "WKV scan, activations, norms: "
            << kernels::KernelIsaName(kernels::ActiveKernelIsa()) << "\nGEMM paths available:";
  for (kernels::GemmPath p : kernels::kAllGemmPaths) {
    if (kernels::GemmPathAvailable(p)) std::cout << " " << kernels::GemmPathName(p);
  }
  const kernels::GemmPath forced = kernels::ForcedGemmPath();
  std::cout << "\nforced GEMM path: "
            << (forced == kernels::GemmPath::kAuto ? "none (auto: fastest measured)"
                                                   : std::string(kernels::GemmPathName(forced)))
            << "\nautotuning: " << Fixed(kernels::GemmAutotuneSeconds(), 3) << " s spent (budget "
            << Fixed(kernels::kGemmAutotuneBudgetSeconds, 1) << " s per process)\n"
            << "cache: " << kernels::GemmCacheStatus() << "\n";
  const auto table = kernels::GemmTuneTable();
  if (table.empty()) {
    std::cout << "no GEMM choices yet (give --model DIR to measure its shapes)\n";
    return;
  }
  std::cout << "\n| n x k | weights | precision | m range | threads | chosen | source | GFLOP/s "
               "per path |\n| --- | --- | --- | --- | ---: | --- | --- | --- |\n";
  for (const auto& e : table) {
    std::string rates;
    for (const auto& [p, g] : e.gflops) {
      rates +=
          (rates.empty() ? "" : ", ") + std::string(kernels::GemmPathName(p)) + " " + Fixed(g, 1);
    }
    std::cout << "| " << e.n << " x " << e.k << " | " << DTypeName(e.dtype) << " | "
              << (e.precision == kernels::MatMulPrecision::kBF16 ? "bf16" : "f32") << " | "
              << kernels::GemmMBucketName(e.bucket) << " | "
              << (e.threads > 0 ? std::to_string(e.threads) : "any") << " | "
              << kernels::GemmPathName(e.path) << " | " << e.source << " | "
              << (rates.empty() ? "-" : rates) << " |\n";
  }
}

}  // namespace

Command RegisterInfo(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* sub = app.add_subcommand(
      "info", "Describe a model folder and its layer numbering; --gemm: the CPU's kernels");
  sub->add_option("--model", a->model, "model folder or checkpoint file (RWKV-6 or RWKV-7)");
  sub->add_flag("--check-weights", a->check_weights, "scan every weight for NaN/Inf");
  sub->add_flag("--gemm", a->gemm,
                "print the CPU features, kernels and the GEMM path chosen per weight shape "
                "(with --model: measured on its shapes now, or read from the cache)");
  sub->add_option("--precision", a->precision, "with --gemm --model: f32 | bf16 | both")
      ->capture_default_str();
  AddThreadsOption(sub, &a->threads);
  AddGemmPathOption(sub, &a->gemm_path);
  return {sub, [a] {
            ApplyThreads(a->threads);
            ApplyGemmPath(a->gemm_path);
            if (a->gemm) {
              PrintGemm(*a);
              return 0;
            }
            if (a->model.empty()) throw UsageError("info: give --model DIR (or --gemm)");
            PrintModel(*a);
            return 0;
          }};
}

}  // namespace rwkv_embed::cli
