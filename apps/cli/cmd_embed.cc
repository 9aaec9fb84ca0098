// rwkv-embed embed: sentences (one per line) -> pooled embeddings of any layers, as .npy
// [layers, N, C] float32 or JSON lines.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "embed_args.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "methods/method_spec.h"
#include "model/layer_spec.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::cli {
namespace {

EmbedRunner g_runner = nullptr;

// Appends one JSON line per sentence of a chunk whose first sentence is `first`.
void WriteJsonl(std::ofstream& out, const std::string& path, const EmbedResult& r, int64_t first) {
  std::string line;
  char buf[32];
  const int64_t n = r.embeddings.empty() ? 0 : r.embeddings[0].rows();
  for (int64_t i = 0; i < n; ++i) {
    line = "{\"index\":" + std::to_string(first + i) + ",\"layers\":{";
    for (size_t l = 0; l < r.layers.size(); ++l) {
      line += (l ? ",\"" : "\"") + std::to_string(r.layers[l]) + "\":[";
      const float* row = r.embeddings[l].Row(i);
      for (int64_t c = 0; c < r.embeddings[l].cols(); ++c) {
        // Shortest text that reads back to the same float.
        auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), row[c]);
        if (c) line += ',';
        line.append(buf, end);
      }
      line += ']';
    }
    line += r.empty[i] ? "},\"empty\":true}\n" : "}}\n";
    out << line;
  }
  if (!out) throw IoError("error writing " + path);
}

// Embeds sentences[first, first + count); a NaN/Inf names the sentence by its input line (every
// line is one sentence: ReadSentenceLines rejects empty ones).
EmbedResult EmbedNamingLines(Embedder& embedder, const std::vector<std::string>& sentences,
                             int64_t first, int64_t count, const EmbedRequest& request,
                             const std::string& input) {
  try {
    return embedder.Embed(std::span(sentences).subspan(first, count), request);
  } catch (const NonFiniteEmbeddingError& e) {
    const int64_t i = first + e.sentence();
    throw e.Renamed(i, "sentence " + std::to_string(i) + " (line " + std::to_string(i + 1) +
                           " of " + (input == "-" ? "stdin" : input) + ")");
  }
}

int RunEmbed(const EmbedArgs& a) {
  ApplyThreads(a.threads);
  ApplyGemmPath(a.gemm_path);
  // Option errors before the output check and the input (LoadEmbedSetup checks them again).
  if (a.precision != "f32" && a.precision != "bf16") {
    throw UsageError("--precision must be f32 or bf16");
  }
  ParsePooling(a.pooling);
  ParseNormalization(a.normalize);
  const bool ext_npy = a.output.size() > 4 && a.output.ends_with(".npy");
  const bool ext_jsonl = a.output.size() > 6 && a.output.ends_with(".jsonl");
  if (!ext_npy && !ext_jsonl) throw UsageError("--output must end in .npy or .jsonl");
  CheckOutputFile(a.output, "--output");  // before any work: a typo must not cost a whole run
  const std::vector<AblationSpec> ablations = ParseAblations(a.ablate);

  auto in = OpenInput(a.input);
  const auto sentences = ReadSentenceLines(*in, a.input == "-" ? "stdin" : a.input);
  if (sentences.empty()) throw DataError("no sentences in " + a.input);

  const auto t0 = std::chrono::steady_clock::now();
  EmbedSetup setup = LoadEmbedSetup(a);
  const EmbedRequest& request = setup.request;
  RwkvEmbedder* rwkv = setup.rwkv;
  const auto& owner = setup.owner;
  Embedder* embedder = owner.get();
  if (!ablations.empty()) {
    std::fprintf(stderr, "embed: ABLATED MODEL: %s (these are not the intact model's embeddings)\n",
                 AblationsName(ablations).c_str());
  }
  if (ProgressWanted(a.progress)) {
    rwkv->options().progress = [t0](int64_t done, int64_t total, int64_t tokens) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\rembed: %lld/%lld sentences, %lld tokens, %.0f tokens/s",
                   static_cast<long long>(done), static_cast<long long>(total),
                   static_cast<long long>(tokens), tokens / (s > 0 ? s : 1));
      if (done == total) std::fputc('\n', stderr);
    };
  }
  const int64_t n = static_cast<int64_t>(sentences.size()), C = embedder->Dim();
  const int64_t n_layers = static_cast<int64_t>(request.layers.size());
  PartialFile out(a.output);
  std::optional<NpyF32Writer> npy;
  std::ofstream jsonl;
  if (ext_npy) {
    const std::vector<int64_t> shape = {n_layers, n, C};
    npy.emplace(out.path(), shape);
  } else {
    jsonl.open(out.path(), std::ios::binary | std::ios::trunc);
    if (!jsonl) throw IoError("cannot write " + out.path().string());
  }
  int64_t tokens = 0;
  const auto progress = rwkv->options().progress;
  for (int64_t first = 0; first < n; first += a.chunk_sentences) {
    const int64_t count = std::min(a.chunk_sentences, n - first);
    if (progress) {
      rwkv->options().progress = [&](int64_t done, int64_t, int64_t tok) {
        progress(first + done, n, tokens + tok);
      };
    }
    const auto result = EmbedNamingLines(*embedder, sentences, first, count, request, a.input);
    tokens += result.tokens;
    if (npy) {
      for (int64_t l = 0; l < n_layers; ++l) {  // layer-major: [l, first .. first+count, :]
        npy->Write((l * n + first) * C, result.embeddings[l].Flat());
      }
    } else {
      WriteJsonl(jsonl, out.path().string(), result, first);
    }
  }
  if (npy) {
    npy->Close();
  } else {
    jsonl.close();
    if (!jsonl) throw IoError("error writing " + out.path().string());
  }
  out.Commit();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string layer_list;
  for (int l : request.layers) layer_list += (layer_list.empty() ? "" : ",") + std::to_string(l);
  const std::string how = a.method.empty() && a.prompt_template.empty()
                              ? a.pooling + " pooling"
                              : "method " + embedder->Name();
  std::fprintf(stderr, "embed: %lld sentences, %lld tokens, layers [%s], %s%s%s -> %s (%.2f s)\n",
               static_cast<long long>(n), static_cast<long long>(tokens), layer_list.c_str(),
               how.c_str(), ablations.empty() ? "" : ", ABLATED ", AblationsName(ablations).c_str(),
               a.output.c_str(), secs);
  return 0;
}

// The pooling method of --method / --template around `model`, fitted on --fit-pairs when it
// fits anything; request.layers becomes the method's layers among those asked (all of its
// layers when none is: a state method's layers are blocks).
std::shared_ptr<Embedder> PoolingMethod(const EmbedArgs& a, std::shared_ptr<RwkvEmbedder> model,
                                        EmbedRequest* request) {
  if (!a.method.empty() && !a.prompt_template.empty()) {
    throw UsageError(
        "give --method SPEC or --template NAME|FILE (= --method prompt:NAME), not both");
  }
  const std::string spec = a.method.empty() ? "prompt:" + a.prompt_template : a.method;
  methods::MethodContext c;
  c.model = std::move(model);
  c.layers = request->layers;
  std::shared_ptr<Embedder> m = methods::MakePoolingMethod(spec, c);
  const std::vector<int> has = m->Layers();
  std::vector<int> layers;
  for (int l : request->layers) {
    if (std::find(has.begin(), has.end(), l) != has.end()) layers.push_back(l);
  }
  request->layers = layers.empty() ? has : layers;
  if (methods::IsFittedMethod(spec)) {
    if (a.fit_pairs.empty()) {
      throw UsageError("--method " + spec +
                       " is fitted on labelled pairs: give --fit-pairs FILE (e.g. a train split)");
    }
    const std::string fitted =
        methods::FitIfNeeded(*m, methods::FitDataOf(ReadPairFile(a.fit_pairs, {})), *request);
    std::fprintf(stderr, "embed: %s fitted: %s\n", spec.c_str(), fitted.c_str());
  } else if (!a.fit_pairs.empty()) {
    throw UsageError("--fit-pairs: --method " + spec + " fits nothing");
  }
  return m;
}

}  // namespace

EmbedSetup LoadEmbedSetup(const EmbedArgs& a) {
  EmbedSetup s;
  RwkvEmbedderOptions options;
  options.batch_tokens = a.batch_tokens;
  if (a.precision != "f32" && a.precision != "bf16") {
    throw UsageError("--precision must be f32 or bf16");
  }
  options.precision =
      a.precision == "bf16" ? kernels::MatMulPrecision::kBF16 : kernels::MatMulPrecision::kF32;
  s.request.pooling = ParsePooling(a.pooling);
  s.request.normalization = ParseNormalization(a.normalize);
  LoadOptions load;
  load.check_finite = a.check_weights;
  if (a.tokenizer != "world" && a.tokenizer != "bytes") {
    throw UsageError("--tokenizer must be world or bytes");
  }
  if (a.tokenizer == "bytes" && !a.vocab.empty()) {
    throw UsageError("--vocab is for the World tokenizer; --tokenizer bytes needs none");
  }
  // An EmbeddingRWKV checkpoint gives its task head's embedding unless --layers/--pooling ask
  // for the backbone's hidden states.
  if (UseEmbeddingRwkv(a.embedding_rwkv, a.model)) {
    if (a.tokenizer != "world") throw UsageError("EmbeddingRWKV uses the World tokenizer");
    if (!a.method.empty() || !a.prompt_template.empty()) {
      throw UsageError("--method/--template pool an RWKV backbone; " + a.model +
                       " gives EmbeddingRWKV head embeddings (add --layers to use its backbone)");
    }
    auto e = LoadEmbeddingRwkv(a.embedding_rwkv, a.model, a.vocab, options, load);
    s.rwkv = &e->backbone();
    s.request.layers = {0};
    s.owner = std::move(e);
  } else {
    auto e =
        RwkvEmbedder::Load(a.model, a.vocab, options, load,
                           a.tokenizer == "bytes" ? TokenizerKind::kBytes : TokenizerKind::kWorld);
    s.request.layers = ParseLayerSpec(a.layers, e->layer_numbering(), a.hf_index);
    s.rwkv = e.get();
    s.owner = std::move(e);
  }
  // Ablations first: a fitted pooling method fits on the model it will embed with.
  ApplyAblations(ParseAblations(a.ablate), *s.rwkv);
  if (!a.method.empty() || !a.prompt_template.empty()) {
    s.owner = PoolingMethod(a, std::static_pointer_cast<RwkvEmbedder>(s.owner), &s.request);
  }
  return s;
}

void SetEmbedRunner(EmbedRunner runner) { g_runner = runner; }

Command RegisterEmbed(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  auto* sub = app.add_subcommand("embed", "Embed sentences (one per line) from any layers");
  sub->add_option("--model", a->model,
                  "model folder (config.json, model.safetensors) or checkpoint file; RWKV-6 or "
                  "RWKV-7, recognised from config.json or the tensor names")
      ->required();
  sub->add_option("--vocab", a->vocab,
                  "vocabulary file (default: rwkv_vocab_v20230424.txt beside the model, then "
                  "$RWKV_EMBED_VOCAB, then the installed copy)");
  sub->add_option("--tokenizer", a->tokenizer,
                  "world (RWKV World vocabulary) | bytes (id = UTF-8 byte, for byte-level models)")
      ->capture_default_str();
  sub->add_option("--input", a->input, "sentences, one per line ('-' = stdin)")
      ->capture_default_str();
  sub->add_option("--output", a->output, "OUT.npy (float32 [layers, N, C]) or OUT.jsonl")
      ->required();
  a->embedding_rwkv.layers_option =
      sub->add_option(
             "--layers", a->layers,
             "layers: all | final | blocks | list/ranges like 1,3,5 or 0-4 "
             "(0 = after pre_ln, k = block k, L+1 = after ln_out). On an EmbeddingRWKV "
             "checkpoint, giving --layers or --pooling selects the backbone's hidden states "
             "(as for any RWKV model); without both, the output is the task head's "
             "embedding, [1, N, C]")
          ->capture_default_str();
  sub->add_flag("--hf-index", a->hf_index,
                "read --layers as HF hidden_states indices (RWKV-6: HF i = our layer i+1; RWKV-7: "
                "HF i = our i for i < L, HF L = our L+1)");
  a->embedding_rwkv.pooling_option =
      sub->add_option("--pooling", a->pooling,
                      "mean | max | first | last | weighted-mean | mean-sqrt-len")
          ->capture_default_str();
  sub->add_option("--normalize", a->normalize, "none | l2 (applied after pooling)")
      ->capture_default_str();
  sub->add_option("--method", a->method,
                  "pooling beyond the mean, BASE[+STEP...]: mean | state-wkv | state-shift | "
                  "state-all | prompteol | echo | prompt:NAME | attention | fusion-mean | "
                  "fusion-concat | fusion-learned, steps center | whiten | abtt[D] | pca<K> | "
                  "fusion-*; e.g. state-wkv+pca64 (docs/evaluation.md#pooling-beyond-the-mean)");
  sub->add_option("--template", a->prompt_template,
                  "prompt template: a NAME from the installed prompt_templates.json (prompteol, "
                  "echo) or FILE.json[:NAME] in the same format (= --method prompt:...)");
  sub->add_option("--fit-pairs", a->fit_pairs,
                  "labelled pair file (TSV/CSV/JSONL with sentence1, sentence2, label) that a "
                  "fitted --method is fitted on")
      ->type_name("FILE");
  sub->add_option("--batch-tokens", a->batch_tokens, "tokens per forward pass")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--chunk-sentences", a->chunk_sentences,
                  "sentences embedded per step while the output is written piecewise (bounds "
                  "memory on large inputs)")
      ->capture_default_str()
      ->check(IntegerIn(1, kMaxCount));
  sub->add_option("--precision", a->precision,
                  "matmul precision: f32 (exact vs FP32 reference) | bf16 (faster)")
      ->capture_default_str();
  sub->add_flag("--check-weights", a->check_weights,
                "scan every weight for NaN/Inf before embedding (reads the whole file)");
  sub->add_flag("--progress", a->progress, "progress on stderr even when it is not a terminal");
  AddAblateOption(sub, &a->ablate);
  AddThreadsOption(sub, &a->threads);
  AddEmbeddingRwkvOptions(sub, a->embedding_rwkv);
  AddGemmPathOption(sub, &a->gemm_path);
  return {sub, [a] { return g_runner ? g_runner(*a) : RunEmbed(*a); }};
}

}  // namespace rwkv_embed::cli
