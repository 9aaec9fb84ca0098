// Named pooling methods of an RWKV model, built from a spec "BASE[+STEP...]":
//   BASE   mean              the model's hidden states pooled the run's way (--pooling)
//          state-wkv | state-shift | state-all   recurrent state after the last token
//          prompteol | echo | prompt:NAME | prompt:FILE.json[:NAME]   prompt-based
//          attention         attention pooling with a learned query
//          fusion-mean | fusion-concat | fusion-learned   = mean+fusion-...
//   STEP   center | whiten | abtt[D] | pca<K>   post-processing fitted on the fit split
//          fusion-mean | fusion-concat | fusion-learned   fusion of the layers so far
// e.g. "state-wkv+pca64", "mean+abtt", "echo+whiten", "prompteol+fusion-learned".
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "methods/fitted_embedder.h"
#include "methods/training.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::methods {

struct MethodContext {
  std::shared_ptr<RwkvEmbedder> model;
  std::vector<int> layers;          // the run's layers: fusion fuses these (empty = all)
  std::filesystem::path templates;  // a user templates file searched before the installed one
  TrainOptions train;               // trained methods: seed, steps, early stopping
};

// UsageError naming the bad part of the spec.
std::shared_ptr<Embedder> MakePoolingMethod(const std::string& spec, const MethodContext& context);

// Checks a spec's names without a model (UsageError naming the bad part): for option parsing.
void CheckPoolingSpec(const std::string& spec);
// "a,b,c" -> specs (each checked); "all" -> DefaultPoolingMethods().
std::vector<std::string> ParsePoolingList(const std::string& list);
// The comparison `reproduce --poolings all` runs.
std::vector<std::string> DefaultPoolingMethods();
// Whether the method learns from pair labels or fits on the fit split (it then needs one).
bool IsFittedMethod(const std::string& spec);

}  // namespace rwkv_embed::methods
