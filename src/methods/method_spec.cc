#include "methods/method_spec.h"

#include "core/error.h"
#include "methods/attention_pooling.h"
#include "methods/layer_fusion.h"
#include "methods/post_processing.h"
#include "methods/prompt_embedder.h"
#include "methods/state_embedder.h"

namespace rwkv_embed::methods {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at = s.find(sep); at != std::string::npos; at = s.find(sep, start)) {
    parts.push_back(s.substr(start, at - start));
    start = at + 1;
  }
  parts.push_back(s.substr(start));
  return parts;
}

// The run's layers that `inner` has (all of its layers when none is).
std::vector<int> LayersOf(const Embedder& inner, const std::vector<int>& wanted) {
  const std::vector<int> has = inner.Layers();
  std::vector<int> out;
  for (int l : wanted) {
    if (std::find(has.begin(), has.end(), l) != has.end()) out.push_back(l);
  }
  return out.empty() ? has : out;
}

std::shared_ptr<Embedder> MakeBase(const std::string& base, const MethodContext& c) {
  if (c.model == nullptr) {
    throw UsageError("unknown pooling method '" + base +
                     "' (expected mean, state-wkv, state-shift, state-all, prompteol, echo, "
                     "prompt:NAME, attention or fusion-mean/concat/learned)");
  }
  if (base == "mean") return c.model;
  if (base.starts_with("state-")) {
    return std::make_shared<StateEmbedder>(c.model, ParseStatePart(base.substr(6)));
  }
  if (base == "prompteol" || base == "echo") {
    return std::make_shared<PromptEmbedder>(c.model, FindPromptTemplate(base, c.templates));
  }
  if (base.starts_with("prompt:")) {
    return std::make_shared<PromptEmbedder>(c.model,
                                            FindPromptTemplate(base.substr(7), c.templates));
  }
  if (base == "attention") return std::make_shared<AttentionPoolEmbedder>(c.model, c.train);
  throw UsageError("unknown pooling method '" + base +
                   "' (expected mean, state-wkv, state-shift, state-all, prompteol, echo, "
                   "prompt:NAME, attention or fusion-mean/concat/learned)");
}

}  // namespace

std::shared_ptr<Embedder> MakePoolingMethod(const std::string& spec, const MethodContext& c) {
  if (c.model == nullptr) throw UsageError("pooling method '" + spec + "' needs an RWKV model");
  std::vector<std::string> steps = Split(spec, '+');
  // prompt:FILE.json:NAME may hold '+' only in a file name; keep it simple: no '+' in paths.
  if (steps.front().starts_with("fusion-")) steps.insert(steps.begin(), "mean");
  std::shared_ptr<Embedder> e = MakeBase(steps.front(), c);
  for (size_t i = 1; i < steps.size(); ++i) {
    const std::string& step = steps[i];
    if (step.starts_with("fusion-")) {
      e = std::make_shared<LayerFusionEmbedder>(e, ParseFusionKind(step.substr(7)),
                                                LayersOf(*e, c.layers), c.train);
    } else {
      e = std::make_shared<PostProcessedEmbedder>(e, ParsePostSpec(step));
    }
  }
  return e;
}

std::vector<std::string> DefaultPoolingMethods() {
  return {"state-wkv+pca64", "state-shift",    "prompteol", "echo",
          "mean+center",     "mean+whiten",    "mean+abtt", "fusion-mean",
          "fusion-concat",   "fusion-learned", "attention"};
}

void CheckPoolingSpec(const std::string& spec) {
  std::vector<std::string> steps = Split(spec, '+');
  const std::string& base = steps.front();
  const bool known_base = base == "mean" || base == "prompteol" || base == "echo" ||
                          base == "attention" || base.starts_with("prompt:") ||
                          base.starts_with("fusion-") || base.starts_with("state-");
  if (!known_base) MakeBase(base, {});  // throws the list of bases
  if (base.starts_with("state-")) ParseStatePart(base.substr(6));
  if (base.starts_with("fusion-")) ParseFusionKind(base.substr(7));
  for (size_t i = 1; i < steps.size(); ++i) {
    if (steps[i].starts_with("fusion-")) {
      ParseFusionKind(steps[i].substr(7));
    } else {
      ParsePostSpec(steps[i]);
    }
  }
}

std::vector<std::string> ParsePoolingList(const std::string& list) {
  if (list == "all") return DefaultPoolingMethods();
  std::vector<std::string> specs;
  for (const std::string& s : Split(list, ',')) {
    if (s.empty()) throw UsageError("empty pooling method in '" + list + "'");
    CheckPoolingSpec(s);
    specs.push_back(s);
  }
  return specs;
}

bool IsFittedMethod(const std::string& spec) {
  for (const char* word : {"center", "whiten", "abtt", "pca", "fusion-learned", "attention"}) {
    if (spec.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace rwkv_embed::methods
