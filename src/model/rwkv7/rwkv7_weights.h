// RWKV-7 ("Goose", x070) weight schema: the only place that knows RWKV-7 tensor names. Both
// namings are normalised here, once, at load time (docs/design.md#rwkv-7-block has the table):
//   authors' RWKV-LM names  `emb.weight`, `blocks.N.ln0`, `blocks.N.att.w1 [C, D]` ... (optionally
//                           under a `rwkv.` prefix, as in EmbeddingRWKV checkpoints);
//   fla / Hugging Face      `model.embeddings.weight`, `model.layers.N.pre_norm`,
//                           `model.layers.N.attn.w_lora.lora.0.weight [D, C]` ... (LoRA matrices
//                           stored transposed relative to the authors', biases as `lora.2.bias`).
// Every size comes from tensor shapes; a config.json, where there is one, must agree with them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "io/safetensors.h"
#include "kernels/gemm.h"
#include "model/sequence_model.h"
#include "model/tensor_reader.h"

namespace rwkv_embed {

struct Rwkv7Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // C = H * N
  int64_t num_layers = 0;         // L
  int64_t num_heads = 0;          // H
  int64_t head_size = 0;          // N
  int64_t intermediate_size = 0;  // F
  // LoRA ranks: decay (w), in-context learning rate (a), value residual (v; blocks >= 1), gate.
  int64_t decay_lora = 0, a_lora = 0, v_lora = 0, gate_lora = 0;
  double layer_norm_epsilon = 1e-5;
  // GroupNorm eps of ln_x: 64e-5 in the authors' code and rwkv.cpp; fla: head_dim * norm_eps.
  double group_norm_epsilon = 64e-5;
  bool random_weights = false;  // config.json marked "rwkv_embed_random_weights"
};

enum class Rwkv7Naming { kAuthors, kFla };

// Weights of one block. Linear weights are [out, in] (x @ W^T with kernels::MatMulT); LoRA
// factors are held the same way: lora_in [D, C], lora_out [C, D].
struct Rwkv7BlockWeights {
  LayerNormWeights ln1, ln2;
  // Token-shift mix coefficients x_r, x_w, x_k, x_v, x_a, x_g: [C] each.
  std::vector<float> x_r, x_w, x_k, x_v, x_a, x_g;
  kernels::WeightMatrix w1, w2;  // decay LoRA: [Dw, C], [C, Dw]; bias w0 [C]
  kernels::WeightMatrix a1, a2;  // in-context learning rate LoRA; bias a0 [C]
  kernels::WeightMatrix v1, v2;  // value residual LoRA (blocks >= 1 only); bias v0 [C]
  kernels::WeightMatrix g1, g2;  // gate LoRA, no bias
  std::vector<float> w0, a0, v0;
  std::vector<float> k_k, k_a, r_k;                      // [C] each (r_k stored [H, N])
  kernels::WeightMatrix receptance, key, value, output;  // [C, C]
  LayerNormWeights ln_x;                                 // GroupNorm affine, [C]
  std::vector<float> ffn_x_k;                            // [C]
  kernels::WeightMatrix ffn_key;                         // [F, C]
  kernels::WeightMatrix ffn_value;                       // [C, F]
};

class Rwkv7Weights {
 public:
  // `path`: a folder (config.json optional; model.safetensors or a sharded index) or a single
  // checkpoint file. Throws IoError/FormatError/ShapeError/NumericError naming file and tensor.
  static std::unique_ptr<Rwkv7Weights> Load(const std::filesystem::path& path,
                                            const LoadOptions& options = {});

  const Rwkv7Config& config() const { return config_; }
  Rwkv7Naming naming() const { return naming_; }
  const std::string& naming_name() const;  // "authors" or "fla"
  const LayerNormWeights& ln0() const { return ln0_; }
  const LayerNormWeights& ln_out() const { return ln_out_; }
  const std::vector<Rwkv7BlockWeights>& blocks() const { return blocks_; }
  const kernels::WeightMatrix& embeddings() const { return embeddings_; }  // [V, C]
  // LM head [V, C]; has_head() is false for checkpoints without one.
  const kernels::WeightMatrix& head() const { return head_; }
  bool has_head() const { return head_.data != nullptr; }
  std::string Describe() const;
  size_t checkpoint_bytes() const { return store_.TotalBytes(); }
  // The first NaN/Inf among the tensors the model uses, in forward order; nullopt when all are
  // finite. Reads every weight.
  std::optional<std::string> FindNonFiniteWeight() const { return used_.FirstNonFinite(); }

 private:
  Rwkv7Weights() = default;
  class Loader;

  TensorStore store_;
  Rwkv7Config config_;
  Rwkv7Naming naming_ = Rwkv7Naming::kAuthors;
  std::string prefix_;  // "" or "rwkv." (authors' names inside a larger checkpoint)
  LayerNormWeights ln0_, ln_out_;
  std::vector<Rwkv7BlockWeights> blocks_;
  kernels::WeightMatrix embeddings_, head_;
  std::vector<AlignedVector<std::byte>> owned_;  // transposed LoRA factors, widened F16
  UsedTensors used_;                             // every tensor the loader read
};

// The fla/HF name of a tensor given by its authors' name ("blocks.3.att.w1" ->
// "model.layers.3.attn.w_lora.lora.0.weight"). Names without an fla counterpart come back as is.
std::string AuthorsToFlaName(const std::string& name);

}  // namespace rwkv_embed
