#include "methods/prompt_embedder.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/vocab_search.h"

#ifndef RWKV_EMBED_SOURCE_DATA_DIR
#define RWKV_EMBED_SOURCE_DATA_DIR ""
#endif

namespace rwkv_embed::methods {
namespace {

using nlohmann::json;

constexpr std::string_view kPlaceholder = "{text}";

// The template's literal pieces around each "{text}".
std::vector<std::string> SplitTemplate(const std::string& text) {
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t at = text.find(kPlaceholder); at != std::string::npos;
       at = text.find(kPlaceholder, start)) {
    pieces.push_back(text.substr(start, at - start));
    start = at + kPlaceholder.size();
  }
  pieces.push_back(text.substr(start));
  return pieces;
}

PromptTemplate ParseTemplate(const json& j, const std::filesystem::path& file, size_t index) {
  const std::string where = file.string() + ": templates[" + std::to_string(index) + "]";
  auto field = [&](const char* key) -> std::string {
    if (!j.contains(key) || !j[key].is_string()) {
      throw FormatError(where + ": field '" + key + "' must be a string");
    }
    return j[key].get<std::string>();
  };
  if (!j.is_object()) throw FormatError(where + ": must be an object");
  PromptTemplate t;
  t.name = field("name");
  t.text = field("template");
  t.source = file.string();
  const std::string here = where + " ('" + t.name + "')";
  if (t.name.empty()) throw FormatError(where + ": field 'name' is empty");
  const int copies = static_cast<int>(SplitTemplate(t.text).size()) - 1;
  if (copies < 1) throw FormatError(here + ": field 'template' has no {text} placeholder");
  const std::string pool = field("pool");
  if (pool != "last" && pool != "copy") {
    throw FormatError(here + ": field 'pool' must be \"last\" or \"copy\", got '" + pool + "'");
  }
  t.pool_last = pool == "last";
  if (j.contains("copy")) {
    if (!j["copy"].is_number_integer())
      throw FormatError(here + ": field 'copy' must be an integer");
    t.copy = j["copy"].get<int>();
  }
  if (t.copy < 1 || t.copy > copies) {
    throw FormatError(here + ": field 'copy' = " + std::to_string(t.copy) +
                      " but the template has " + std::to_string(copies) + " {text}");
  }
  if (j.contains("reference") && j["reference"].is_string()) t.reference = j["reference"];
  return t;
}

std::string Names(const std::vector<PromptTemplate>& all) {
  std::string names;
  for (const PromptTemplate& t : all) names += (names.empty() ? "" : ", ") + t.name;
  return names;
}

}  // namespace

std::vector<PromptTemplate> LoadPromptTemplates(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw IoError("cannot read prompt templates " + file.string());
  const json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw FormatError(file.string() + ": not valid JSON");
  if (!j.is_object() || !j.contains("templates") || !j["templates"].is_array()) {
    throw FormatError(file.string() + ": expected an object with a \"templates\" array");
  }
  std::vector<PromptTemplate> out;
  for (size_t i = 0; i < j["templates"].size(); ++i) {
    out.push_back(ParseTemplate(j["templates"][i], file, i));
    for (size_t k = 0; k + 1 < out.size(); ++k) {
      if (out[k].name == out.back().name) {
        throw FormatError(file.string() + ": template name '" + out.back().name + "' repeated");
      }
    }
  }
  if (out.empty()) throw FormatError(file.string() + ": \"templates\" is empty");
  return out;
}

std::filesystem::path FindPromptTemplatesFile() {
  std::filesystem::path installed = InstalledDataDir() / kPromptTemplatesFile;
  if (std::filesystem::is_regular_file(installed)) return installed;
  std::filesystem::path source =
      std::filesystem::path(RWKV_EMBED_SOURCE_DATA_DIR) / kPromptTemplatesFile;
  if (!std::string_view(RWKV_EMBED_SOURCE_DATA_DIR).empty() &&
      std::filesystem::is_regular_file(source)) {
    return source;
  }
  throw IoError("prompt templates not found: looked for " + installed.string() + " and " +
                source.string() + " (pass --templates FILE)");
}

PromptTemplate FindPromptTemplate(const std::string& name_or_file,
                                  const std::filesystem::path& user_file) {
  // FILE.json or FILE.json:NAME
  const size_t json_at = name_or_file.find(".json");
  if (json_at != std::string::npos) {
    const std::string file = name_or_file.substr(0, json_at + 5);
    const std::string rest = name_or_file.substr(json_at + 5);
    const std::vector<PromptTemplate> all = LoadPromptTemplates(file);
    if (rest.empty()) {
      if (all.size() != 1) {
        throw UsageError(file + " holds " + std::to_string(all.size()) +
                         " templates; name one as " + file + ":NAME (" + Names(all) + ")");
      }
      return all.front();
    }
    if (rest.front() == ':') {
      for (const PromptTemplate& t : all) {
        if (t.name == rest.substr(1)) return t;
      }
      throw UsageError("no template '" + rest.substr(1) + "' in " + file + " (" + Names(all) + ")");
    }
  }
  std::vector<PromptTemplate> all;
  if (!user_file.empty()) all = LoadPromptTemplates(user_file);
  const std::vector<PromptTemplate> installed = LoadPromptTemplates(FindPromptTemplatesFile());
  all.insert(all.end(), installed.begin(), installed.end());
  for (const PromptTemplate& t : all) {
    if (t.name == name_or_file) return t;
  }
  throw UsageError("unknown prompt template '" + name_or_file + "' (known: " + Names(all) +
                   "; or give FILE.json)");
}

PromptEmbedder::PromptEmbedder(std::shared_ptr<RwkvEmbedder> model, PromptTemplate prompt)
    : model_(std::move(model)), prompt_(std::move(prompt)) {
  for (const std::string& piece : SplitTemplate(prompt_.text)) {
    pieces_.push_back(model_->tokenizer().Encode(piece));
  }
}

std::string PromptEmbedder::Description() const {
  return model_->Description() + "; prompt template '" + prompt_.name + "' (" + prompt_.source +
         "): " + json(prompt_.text).dump() + ", pooled over " +
         (prompt_.pool_last ? std::string("the last token")
                            : "copy " + std::to_string(prompt_.copy) + " of the sentence") +
         (prompt_.reference.empty() ? "" : "; " + prompt_.reference);
}

PromptTokens PromptEmbedder::Build(const std::vector<int32_t>& text) const {
  PromptTokens p;
  for (size_t piece = 0; piece < pieces_.size(); ++piece) {
    p.ids.insert(p.ids.end(), pieces_[piece].begin(), pieces_[piece].end());
    if (piece + 1 == pieces_.size()) break;
    const bool pooled = !prompt_.pool_last && static_cast<int>(piece) + 1 == prompt_.copy;
    for (size_t t = 0; t < text.size(); ++t) {
      if (pooled) p.positions.push_back(static_cast<int64_t>(p.ids.size()));
      p.ids.push_back(text[t]);
    }
  }
  if (prompt_.pool_last) p.positions = {static_cast<int64_t>(p.ids.size()) - 1};
  return p;
}

EmbedResult PromptEmbedder::Embed(std::span<const std::string> sentences,
                                  const EmbedRequest& request) {
  std::vector<std::vector<int32_t>> ids = model_->Tokenize(sentences);
  TokenEmbedOptions options;
  options.pool_positions.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].empty()) continue;  // stays empty: a zero row, flagged
    PromptTokens p = Build(ids[i]);
    ids[i] = std::move(p.ids);
    options.pool_positions[i] = std::move(p.positions);
  }
  return model_->EmbedTokens(std::move(ids), request, options);
}

}  // namespace rwkv_embed::methods
