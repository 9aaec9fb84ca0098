#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace rwkv_embed {
namespace fs = std::filesystem;
namespace {

// The folder a relative file name lives in.
fs::path FolderOf(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

void CheckWritableFolder(const fs::path& folder, std::string_view option, const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(folder, ec);
  if (!fs::exists(status)) {
    throw IoError(std::string(option) + " " + path.string() + ": folder " + folder.string() +
                  " does not exist");
  }
  if (!fs::is_directory(status)) {
    throw IoError(std::string(option) + " " + path.string() + ": " + folder.string() +
                  " is not a folder");
  }
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    throw IoError(std::string(option) + " " + path.string() + ": folder " + folder.string() +
                  " is not writable (" + std::strerror(errno) + ")");
  }
}

// `path` as an absolute, normalised path without a trailing separator.
fs::path Normalised(const fs::path& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec).lexically_normal();
  if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();  // "out/" -> "out"
  return p;
}

}  // namespace

PartialFile::PartialFile(fs::path final_path)
    : final_(std::move(final_path)), partial_(final_.string() + ".partial") {}

PartialFile::~PartialFile() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(partial_, ec);  // nothing to report from a destructor; the cause is already thrown
  }
}

void PartialFile::Commit() {
  std::error_code ec;
  fs::rename(partial_, final_, ec);
  if (ec) {
    throw IoError("cannot rename " + partial_.string() + " to " + final_.string() + ": " +
                  ec.message());
  }
  committed_ = true;
}

void WriteFileAtomically(const fs::path& path, std::string_view text) {
  PartialFile file(path);
  {
    std::ofstream out(file.path(), std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("cannot write " + file.path().string() + ": " + std::strerror(errno));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) throw IoError("error writing " + file.path().string());
  }
  file.Commit();
}

void CheckOutputFile(const fs::path& path, std::string_view option) {
  if (path.empty()) throw IoError(std::string(option) + ": empty output path");
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    throw IoError(std::string(option) + " " + path.string() +
                  " is a folder; give a file name inside it");
  }
  CheckWritableFolder(FolderOf(path), option, path);
}

void CheckOutputFolder(const fs::path& path, std::string_view option) {
  if (path.empty()) throw IoError(std::string(option) + ": empty output folder");
  std::error_code ec;
  fs::path existing = Normalised(path);
  while (!fs::exists(existing, ec) && existing != existing.parent_path()) {
    existing = existing.parent_path();
  }
  if (!fs::is_directory(existing, ec)) {
    throw IoError(std::string(option) + " " + path.string() + ": " + existing.string() +
                  " is a file, not a folder");
  }
  CheckWritableFolder(existing, option, path);
}

CreatedFolders::CreatedFolders(const fs::path& path) {
  std::error_code ec;
  for (fs::path p = Normalised(path); !fs::exists(p, ec) && p != p.parent_path();
       p = p.parent_path()) {
    created_.push_back(p);
  }
  fs::create_directories(path, ec);
  if (ec) {
    created_.clear();
    throw IoError("cannot create folder " + path.string() + ": " + ec.message());
  }
}

CreatedFolders::~CreatedFolders() {
  std::error_code ec;
  for (const fs::path& p : created_) {
    if (!fs::is_directory(p, ec) || !fs::is_empty(p, ec)) break;
    fs::remove(p, ec);
  }
}

}  // namespace rwkv_embed
