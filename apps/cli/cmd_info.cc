// rwkv-embed info: what a model folder holds, and the layer numbering to use with it.
#include <iostream>

#include "commands.h"
#include "model/layer_spec.h"
#include "model/weights.h"

namespace rwkv_embed::cli {

Command RegisterInfo(CLI::App& app) {
  struct Args {
    std::string model;
    bool check_weights = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("info", "Describe a model folder and its layer numbering");
  sub->add_option("--model", a->model, "model folder")->required();
  sub->add_flag("--check-weights", a->check_weights, "scan every weight for NaN/Inf");
  return {sub, [a] {
            LoadOptions load;
            load.check_finite = a->check_weights;
            const auto w = ModelWeights::Load(a->model, load);
            const ModelConfig& c = w->config();
            std::cout << w->Describe() << "\n"
                      << "weights: " << w->checkpoint_bytes() << " bytes"
                      << (a->check_weights ? " (all finite)" : "") << "\n"
                      << "vocab_size " << c.vocab_size << ", hidden " << c.hidden_size
                      << ", attention " << c.attention_hidden_size << ", intermediate "
                      << c.intermediate_size << ", group-norm eps " << c.group_norm_epsilon()
                      << "\nlayers:\n";
            const int L = static_cast<int>(c.num_layers);
            for (int l = 0; l <= L + 1; ++l) std::cout << "  " << LayerLabel(l, L) << "\n";
            return 0;
          }};
}

}  // namespace rwkv_embed::cli
