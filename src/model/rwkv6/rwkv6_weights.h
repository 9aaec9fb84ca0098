// RWKV-6 weights in the layout the forward pass wants. This is the only place that knows tensor
// names: Hugging Face (`rwkv.blocks.N.attention.key.weight`) and the RWKV authors' original names
// (`blocks.N.att.key.weight`) are both normalised here, once, at load time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/matrix.h"
#include "io/safetensors.h"
#include "kernels/gemm.h"
#include "model/rwkv6/rwkv6_config.h"
#include "model/sequence_model.h"
#include "model/tensor_reader.h"

namespace rwkv_embed {

// Maps a Hugging Face tensor name to the RWKV authors' original name (as in safetensors converted
// from their .pth files): rwkv.embeddings -> emb, rwkv.blocks.N -> blocks.N, attention -> att,
// feed_forward -> ffn, pre_ln -> ln0, rwkv.ln_out -> ln_out.
std::string HfToOriginalName(std::string name);

// Weights of one block. Linear weights are [out, in] so every product is x @ W^T
// (kernels::MatMulT). Checkpoint matrices stored as [in, out] (the LoRA factors) are transposed
// once at load.
struct Rwkv6BlockWeights {
  LayerNormWeights ln1, ln2;
  // Time mix (attention). maa_*: [C]; maa_w1: [5E, C]; maa_w2[j]: [C, E] for j in (w, k, v, r, g).
  std::vector<float> maa_x, maa_w, maa_k, maa_v, maa_r, maa_g;
  kernels::WeightMatrix maa_w1;
  kernels::WeightMatrix maa_w2[5];
  std::vector<float> time_decay;                       // [A]
  kernels::WeightMatrix decay_w1;                      // [D, C]
  kernels::WeightMatrix decay_w2;                      // [A, D]
  std::vector<float> bonus;                            // time_faaaa, u: [H * S]
  kernels::WeightMatrix receptance, key, value, gate;  // [A, C]
  kernels::WeightMatrix output;                        // [C, A]
  LayerNormWeights ln_x;                               // GroupNorm affine, [A]
  // Channel mix (feed forward). ffn_maa_*: [C].
  std::vector<float> ffn_maa_k, ffn_maa_r;
  kernels::WeightMatrix ffn_key;         // [F, C]
  kernels::WeightMatrix ffn_receptance;  // [C, C]
  kernels::WeightMatrix ffn_value;       // [C, F]
};

class Rwkv6Weights {
 public:
  // `dir` holds config.json (optional: shapes are authoritative and checked against it) and a
  // checkpoint io/checkpoint.h's OpenCheckpoint finds (model.safetensors, a sharded index,
  // model.pth, pytorch_model.bin); `dir` may also be the checkpoint file itself. Throws
  // IoError/FormatError/ShapeError/NumericError naming the file and tensor.
  static std::unique_ptr<Rwkv6Weights> Load(const std::filesystem::path& dir,
                                            const LoadOptions& options = {});

  const Rwkv6Config& config() const { return config_; }
  const LayerNormWeights& pre_ln() const { return pre_ln_; }
  const LayerNormWeights& ln_out() const { return ln_out_; }
  const std::vector<Rwkv6BlockWeights>& blocks() const { return blocks_; }
  // Token embeddings [V, C] and LM head [V, C] (stored dtype).
  const kernels::WeightMatrix& embeddings() const { return embeddings_; }
  const kernels::WeightMatrix& head() const { return head_; }
  // Which naming the checkpoint used: "hf" or "original".
  const std::string& naming() const { return naming_; }
  std::string Describe() const;
  size_t checkpoint_bytes() const { return store_.TotalBytes(); }
  // The first NaN/Inf among the tensors the model uses, in forward order (embeddings, pre_ln,
  // blocks 0..L-1, ln_out, head), as "tensor 'NAME' in FILE has a non-finite value at element N";
  // nullopt when all are finite. Reads every weight: the on-demand form of
  // LoadOptions::check_finite, for explaining a non-finite result.
  std::optional<std::string> FindNonFiniteWeight() const { return used_.FirstNonFinite(); }

 private:
  Rwkv6Weights() = default;
  class Loader;

  TensorStore store_;
  Rwkv6Config config_;
  std::string naming_;
  LayerNormWeights pre_ln_, ln_out_;
  std::vector<Rwkv6BlockWeights> blocks_;
  kernels::WeightMatrix embeddings_, head_;
  // Owned buffers for matrices that could not be used in place (transposed LoRA factors, F16
  // checkpoints widened to F32). Raw bytes, 64-byte aligned.
  std::vector<AlignedVector<std::byte>> owned_;
  UsedTensors used_;  // every tensor the loader read (FindNonFiniteWeight)
};

// Earlier name, from when RWKV-6 was the only architecture.
using ModelWeights = Rwkv6Weights;

}  // namespace rwkv_embed
