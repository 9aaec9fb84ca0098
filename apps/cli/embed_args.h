// The options of `rwkv-embed embed` and the embedder they describe, shared with the MPI build
// (apps/mpi), whose `embed` shards the same work over ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/embedder.h"
#include "embed_rwkv_args.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::cli {

struct EmbedArgs {
  std::string model, vocab, input = "-", output, layers = "final", pooling = "mean",
                            normalize = "none", precision = "f32", tokenizer = "world", gemm_path;
  // Pooling beyond the mean (methods/method_spec.h); fitted methods fit on --fit-pairs.
  std::string method, prompt_template, fit_pairs;
  bool hf_index = false, progress = false, check_weights = false;
  int threads = 0;
  int64_t batch_tokens = 2048;
  // Sentences per Embed call: bounds the embeddings held in memory ([layers, chunk, C]) while
  // the output file is written piecewise.
  int64_t chunk_sentences = 4096;
  EmbeddingRwkvArgs embedding_rwkv;
  std::vector<std::string> ablate;  // --ablate specs (model/ablation.h)
};

// The loaded model and the request the options describe.
struct EmbedSetup {
  std::shared_ptr<Embedder> owner;  // the RWKV model, or a pooling method around it
  RwkvEmbedder* rwkv = nullptr;     // runs the batches (the backbone, for EmbeddingRWKV)
  EmbedRequest request;
};
// Checks the model options (UsageError), loads the model and applies the --ablate specs.
EmbedSetup LoadEmbedSetup(const EmbedArgs& a);

// The MPI build replaces how `embed` runs (its runner is called instead of the single-process
// one); nullptr restores the default.
using EmbedRunner = int (*)(const EmbedArgs&);
void SetEmbedRunner(EmbedRunner runner);

}  // namespace rwkv_embed::cli
