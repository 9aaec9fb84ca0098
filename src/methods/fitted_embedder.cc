#include "methods/fitted_embedder.h"

namespace rwkv_embed::methods {

FitData FitDataOf(const PairDataset& dataset) {
  FitData f;
  f.sentences = UniqueSentences(dataset, &f.pairs);
  f.labels.reserve(dataset.pairs.size());
  for (const SentencePair& p : dataset.pairs) f.labels.push_back(p.label);
  f.source = dataset.task + " " + dataset.split + " (" + std::to_string(dataset.pairs.size()) +
             " pairs, " + std::to_string(f.sentences.size()) + " sentences)";
  return f;
}

std::string FitIfNeeded(Embedder& embedder, const FitData& data, const EmbedRequest& request) {
  auto* fitted = dynamic_cast<FittedEmbedder*>(&embedder);
  if (fitted == nullptr) return "";
  fitted->Fit(data, request);
  return fitted->FittedOn();
}

}  // namespace rwkv_embed::methods
