#include "io/checkpoint.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "io/pth.h"
#include "io/zip.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string Quote(const fs::path& p) { return "'" + p.string() + "'"; }

bool EndsWith(const fs::path& p, std::string_view suffix) {
  return p.filename().string().ends_with(suffix);
}

// Whether the file starts like a torch archive (zip, or the legacy format rejected on open).
bool LooksLikeTorch(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError("cannot open " + Quote(p) + ": " + std::strerror(errno));
  std::array<char, 16> head{};
  in.read(head.data(), head.size());
  const auto bytes = std::as_bytes(std::span(head.data(), static_cast<size_t>(in.gcount())));
  return HasZipMagic(bytes) || IsLegacyTorchFormat(bytes);
}

// The files a weight_map index names, in name order, beside the index.
std::vector<fs::path> IndexShards(const fs::path& index) {
  std::ifstream in(index, std::ios::binary);
  if (!in) throw IoError("cannot open index " + Quote(index) + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const Json j = Json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw FormatError("index " + Quote(index) + " is not valid JSON");
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object() ||
      j["weight_map"].empty()) {
    throw FormatError("index " + Quote(index) + " has no non-empty \"weight_map\" object");
  }
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) {
      throw FormatError("index " + Quote(index) + ": weight_map entry for tensor '" + tensor +
                        "' is not a file name string");
    }
    shards.insert(shard.get<std::string>());
  }
  std::vector<fs::path> files;
  for (const std::string& s : shards) files.push_back(index.parent_path() / s);
  return files;
}

CheckpointLocation LocateFile(const fs::path& p) {
  if (p.extension() == ".json") {
    const bool st = EndsWith(p, ".safetensors.index.json");
    return {st ? CheckpointFormat::kSafetensors : CheckpointFormat::kPth, p, IndexShards(p)};
  }
  return {LooksLikeTorch(p) ? CheckpointFormat::kPth : CheckpointFormat::kSafetensors, p, {p}};
}

// The folder's single *.pth file, if it has exactly one.
std::optional<fs::path> SinglePth(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".pth" && e.is_regular_file(ec)) found.push_back(e.path());
  }
  if (found.size() > 1) {
    throw IoError("directory " + Quote(dir) + " holds several .pth files (" +
                  found[0].filename().string() + ", " + found[1].filename().string() +
                  ", ...): give the checkpoint file itself");
  }
  if (found.empty()) return std::nullopt;
  return found[0];
}

TensorStore OpenPth(const CheckpointLocation& loc) {
  std::vector<TensorView> views;
  std::vector<std::shared_ptr<const void>> owners;
  std::string description;
  for (const fs::path& f : loc.files) {
    auto file = std::make_shared<const PthFile>(PthFile::Open(f));
    views.insert(views.end(), file->tensors().begin(), file->tensors().end());
    owners.push_back(file);
    description += (description.empty() ? "" : ", ") + f.string();
  }
  TensorStore store = TensorStore::FromViews(std::move(views), std::move(owners), description);
  if (loc.path.extension() == ".json") {  // every listed tensor must be where the index says
    std::ifstream in(loc.path, std::ios::binary);
    const Json j = Json::parse(in, nullptr, /*allow_exceptions=*/false);
    for (const auto& [tensor, shard] : j["weight_map"].items()) {
      const TensorView* t = store.Find(tensor);
      if (t == nullptr || t->file->filename() != fs::path(shard.get<std::string>()).filename()) {
        throw FormatError("index " + Quote(loc.path) + " maps tensor '" + tensor + "' to shard '" +
                          shard.get<std::string>() + "', which does not hold it");
      }
    }
  }
  return store;
}

}  // namespace

CheckpointLocation LocateCheckpoint(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return LocateFile(path);
  // A single file and an index of the same format side by side cannot be told apart (e.g. a
  // sharded model written over a single-file one): loading either could silently use stale
  // weights. Across formats the preference is transformers' own: safetensors first.
  for (const auto& [single, index] :
       {std::pair{"model.safetensors", "model.safetensors.index.json"},
        std::pair{"pytorch_model.bin", "pytorch_model.bin.index.json"}}) {
    if (fs::exists(path / single, ec) && fs::exists(path / index, ec)) {
      throw FormatError("model folder " + Quote(path) + " holds both " + Quote(path / single) +
                        " and " + Quote(path / index) +
                        ": ambiguous which weights to load; remove the stale one");
    }
  }
  for (const char* name : {"model.safetensors", "model.safetensors.index.json", "model.pth",
                           "pytorch_model.bin", "pytorch_model.bin.index.json"}) {
    if (fs::exists(path / name, ec)) return LocateFile(path / name);
  }
  if (const auto pth = SinglePth(path)) return LocateFile(*pth);
  throw IoError("directory " + Quote(path) +
                " holds no checkpoint: expected model.safetensors, "
                "model.safetensors.index.json, model.pth, pytorch_model.bin, "
                "pytorch_model.bin.index.json or a single *.pth file");
}

TensorStore OpenCheckpoint(const fs::path& path) {
  const CheckpointLocation loc = LocateCheckpoint(path);
  if (loc.format == CheckpointFormat::kSafetensors) return TensorStore::Open(loc.path);
  return OpenPth(loc);
}

void WriteSafetensorsCopy(const TensorStore& store, const CheckpointLocation& source,
                          const fs::path& out, const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  for (const fs::path& f : source.files) {
    if (fs::equivalent(f, out, ec)) {
      throw UsageError("output " + Quote(out) + " is the checkpoint being read");
    }
  }
  std::vector<TensorView> views;
  for (const std::string& name : store.Names()) views.push_back(store.Get(name));
  fs::path partial = out;
  partial += ".partial";
  try {
    WriteSafetensorsFromViews(partial, views, metadata);
    fs::rename(partial, out);
  } catch (const fs::filesystem_error& e) {
    fs::remove(partial, ec);
    throw IoError("cannot rename " + Quote(partial) + " to " + Quote(out) + ": " +
                  e.code().message());
  } catch (...) {
    fs::remove(partial, ec);
    throw;
  }
}

}  // namespace rwkv_embed
