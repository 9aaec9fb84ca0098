// Embedders that learn something from a fitting split before they embed (post-processing,
// learned layer weights, attention pooling, projections of state vectors). They see only what
// Fit is given — the task's train split in `eval`/`reproduce` — and never the scored split:
// Embed applies what was fitted and fits nothing.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/embedder.h"
#include "data/pairs.h"

namespace rwkv_embed::methods {

// What a method is fitted on: the fitting split's distinct sentences, and its labelled pairs as
// rows of `sentences` (for methods trained on pair labels).
struct FitData {
  std::vector<std::string> sentences;
  std::vector<std::pair<int, int>> pairs;
  std::vector<double> labels;
  std::string source;  // e.g. "mrpc train (3668 pairs, 7016 sentences)"
};
FitData FitDataOf(const PairDataset& dataset);

class FittedEmbedder : public Embedder {
 public:
  // Fits on `data` for the layers, pooling and normalisation of `request` (empty layers = all);
  // Embed then accepts those layers only (UsageError before Fit or for another layer).
  virtual void Fit(const FitData& data, const EmbedRequest& request) = 0;
  // What Fit saw and chose, for the JSON ("" before Fit).
  virtual std::string FittedOn() const = 0;
};

// Fits `embedder` when it is a FittedEmbedder; otherwise nothing. Returns FittedOn() or "".
std::string FitIfNeeded(Embedder& embedder, const FitData& data, const EmbedRequest& request);

}  // namespace rwkv_embed::methods
