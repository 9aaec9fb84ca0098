// The pooling comparison (issue 9): every pooling method beyond the mean (MethodResult::
// pooling_of set) at its best layer, with paired tests against mean pooling (its model's best
// layer) and against averaged GloVe, and the one-sentence answer to "does any RWKV method beat
// averaged GloVe on MRPC dev?". Best layers are chosen on the scored split itself, as the study
// does: descriptive, and optimistic for every layered method.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/evaluator.h"
#include "report/report.h"

namespace rwkv_embed::report {

// The layer with the highest Spearman on `split` (first on ties), or nullptr.
const eval::LayerResult* BestLayer(const eval::MethodResult& method, const std::string& split);

// Per split: each pooling method's best layer vs its model's best layer ("pooling_vs_mean") and
// vs GloVe ("pooling_vs_glove"); the model's best layer vs GloVe ("pooling_vs_glove") too.
std::vector<eval::Comparison> PoolingComparisons(const TaskResults& task,
                                                 const metrics::ResampleOptions& options);

// "pooling_of", "fitted_on" and "token_weights" of a pooling method's JSON entry.
void AddPoolingMethodJson(const eval::MethodResult& method, nlohmann::json* entry);

// The task without its pooling methods (the study's plots), and only GloVe, the models the
// pooling methods pool and those methods (the pooling plot; nothing when there is none).
TaskResults WithoutPoolingMethods(const TaskResults& task);
std::optional<TaskResults> PoolingMethodsOnly(const TaskResults& task);

// The report section ("" when the task has no pooling method).
std::string PoolingComparisonSection(const TaskResults& task);

}  // namespace rwkv_embed::report
