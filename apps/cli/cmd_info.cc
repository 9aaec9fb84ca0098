// rwkv-embed info: what a model folder holds, and the layer numbering to use with it.
#include <iostream>

#include "commands.h"
#include "model/layer_spec.h"
#include "model/load_model.h"
#include "model/rwkv6.h"
#include "model/rwkv7.h"

namespace rwkv_embed::cli {
namespace {

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

}  // namespace

Command RegisterInfo(CLI::App& app) {
  struct Args {
    std::string model;
    bool check_weights = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("info", "Describe a model folder and its layer numbering");
  sub->add_option("--model", a->model, "model folder or checkpoint file (RWKV-6 or RWKV-7)")
      ->required();
  sub->add_flag("--check-weights", a->check_weights, "scan every weight for NaN/Inf");
  return {sub, [a] {
            LoadOptions load;
            load.check_finite = a->check_weights;
            const auto m = LoadModel(a->model, load);
            std::cout << m->Describe() << "\n"
                      << "weights: " << m->checkpoint_bytes() << " bytes"
                      << (a->check_weights ? " (all finite)" : "") << "\n";
            PrintShapes(*m);
            std::cout << "layers:\n";
            const LayerNumbering numbering = m->layer_numbering();
            for (int l = 0; l <= numbering.last(); ++l) {
              std::cout << "  " << numbering.Label(l) << "\n";
            }
            return 0;
          }};
}

}  // namespace rwkv_embed::cli
