// Prompt-based sentence embeddings from an RWKV model: the sentence is placed in a template and
// one part of the prompt's hidden states is pooled:
//   pool "last"  the last token of the whole prompt (PromptEOL, Jiang et al. 2023:
//                `This sentence : "X" means in one word:"`),
//   pool "copy"  the tokens of copy N of the sentence (echo embeddings, Springer et al. 2024: the
//                text twice, pooled over the second copy only, which has read the whole text),
//                with the request's pooling (mean by default).
// Templates are data: a JSON file installed with rwkv-embed (prompt_templates.json) and any file
// the user writes in the same format. Each piece between placeholders is tokenized on its own and
// the ids concatenated, so the sentence's token positions are exact (a tokenizer merging across a
// placeholder boundary could otherwise blur them).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "methods/fitted_embedder.h"
#include "model/rwkv_embedder.h"

namespace rwkv_embed::methods {

struct PromptTemplate {
  std::string name;
  std::string text;       // with one or more "{text}"
  bool pool_last = true;  // else pool copy `copy` of the sentence
  int copy = 1;           // 1-based, pool "copy" only
  std::string reference;  // where the template comes from (optional)
  std::string source;     // the file it was read from
};

inline constexpr const char* kPromptTemplatesFile = "prompt_templates.json";

// Reads {"templates": [{name, template, pool: last|copy, copy, reference}, ...]}. FormatError
// naming the file, the template and the field for anything malformed; IoError if unreadable.
std::vector<PromptTemplate> LoadPromptTemplates(const std::filesystem::path& file);
// The installed templates file (<datadir>/rwkv-embed/prompt_templates.json), else the source
// tree's data/ copy (an uninstalled build). IoError naming both when neither exists.
std::filesystem::path FindPromptTemplatesFile();
// `name_or_file`: a template NAME from `user_file` (if given) then the installed file, or a
// FILE.json holding exactly one template (or FILE.json:NAME). UsageError listing the names known.
PromptTemplate FindPromptTemplate(const std::string& name_or_file,
                                  const std::filesystem::path& user_file = {});

// The ids fed for one sentence and the positions pooled.
struct PromptTokens {
  std::vector<int32_t> ids;
  std::vector<int64_t> positions;  // ascending
};

class PromptEmbedder : public Embedder {
 public:
  PromptEmbedder(std::shared_ptr<RwkvEmbedder> model, PromptTemplate prompt);

  std::string Name() const override { return "prompt:" + prompt_.name; }
  std::string Description() const override;
  int64_t Dim() const override { return model_->Dim(); }
  std::vector<int> Layers() const override { return model_->Layers(); }
  std::vector<LayerInfo> DescribeLayers() const override { return model_->DescribeLayers(); }
  // An empty sentence gets a zero row, flagged empty (the template alone says nothing about it).
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;

  // The prompt around the sentence's ids `text` (non-empty).
  PromptTokens Build(const std::vector<int32_t>& text) const;

 private:
  std::shared_ptr<RwkvEmbedder> model_;
  PromptTemplate prompt_;
  std::vector<std::vector<int32_t>> pieces_;  // literal pieces: pieces_.size() = copies + 1
};

}  // namespace rwkv_embed::methods
