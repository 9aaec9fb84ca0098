// Helpers shared by the tests of the models (golden, load): copying a checkpoint, loading a model
// folder's float64 reference outputs, the architecture-independent checks (packing, chunking, mean
// pooling) that every SequenceModel must pass, and the final layer of a forward pass for comparing
// two loads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "io/safetensors.h"
#include "model/sequence_model.h"

namespace rwkv_embed::testing {

// A model with its folder's golden outputs: golden.safetensors (seqN.layers, seqN.mean,
// seqN.last_logits, ...) and the token ids of golden.json's sequences.
struct Golden {
  std::unique_ptr<SequenceModel> model;
  TensorStore golden;
  std::vector<std::vector<int32_t>> ids;
};
Golden LoadGolden(std::unique_ptr<SequenceModel> model, const std::filesystem::path& dir);

// Every tensor of `src`, in its order, with `edit` applied to each (to rename, reshape or alter
// it; return false to drop it), for writing a modified checkpoint.
std::vector<TensorToWrite> CopyTensors(const TensorStore& src,
                                       const std::function<bool(TensorToWrite&)>& edit);

// Every layer tap of `m`, 0 .. num_layer_taps() - 1.
std::vector<int> AllLayers(const SequenceModel& m);

// The last layer tap's hidden states of `ids` (one sequence), flattened.
std::vector<float> FinalLayer(const SequenceModel& m, std::span<const int32_t> ids);

// Cosine similarity (in double) between the mean of h's rows and `ref_mean` (h.cols() values).
double MeanPooledCosine(const Matrix& h, std::span<const float> ref_mean);

// Expects all of `ids` packed into one batch to give, bit for bit, the layer taps, last logits and
// states that each sequence gives alone, with matmuls at `precision`.
void ExpectPackedBatchIsBitIdentical(const SequenceModel& m,
                                     const std::vector<std::vector<int32_t>>& ids,
                                     kernels::MatMulPrecision precision);

// Expects `ids` fed in chunks of each size in `chunks`, the state carried between chunks, to give
// bit for bit the layer taps, last logits and final state of one pass (matmuls at `precision`).
void ExpectChunkedEvaluationEqualsOnePass(const SequenceModel& m, std::span<const int32_t> ids,
                                          std::span<const size_t> chunks,
                                          kernels::MatMulPrecision precision);

}  // namespace rwkv_embed::testing
