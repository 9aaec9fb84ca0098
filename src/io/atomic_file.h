// Output files that are never seen half-written, and output paths checked before any work.
//
// The `.partial` discipline: every output is written to "<path>.partial" and renamed onto <path>
// only when complete (rename is atomic within a folder), so a crash, kill or error leaves either
// the previous file or the new one, never a mix; a failed run removes its .partial.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv_embed {

// "<final>.partial", removed on destruction unless Commit() renamed it onto `final`.
class PartialFile {
 public:
  explicit PartialFile(std::filesystem::path final_path);
  ~PartialFile();
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  const std::filesystem::path& path() const { return partial_; }
  const std::filesystem::path& final_path() const { return final_; }
  // Renames the .partial onto the final path; IoError naming both on failure.
  void Commit();

 private:
  std::filesystem::path final_, partial_;
  bool committed_ = false;
};

// Writes `text` to `path` through a PartialFile. IoError naming the path on failure.
void WriteFileAtomically(const std::filesystem::path& path, std::string_view text);

// Fails at once (IoError naming `option` and the path) when `path` cannot become an output file:
// it is a folder, or its folder does not exist, is not a folder or is not writable. Called before
// any work so that a typo never costs a whole run.
void CheckOutputFile(const std::filesystem::path& path, std::string_view option);

// The same for an output folder that may not exist yet: it must not be a file, and its nearest
// existing ancestor must be a writable folder.
void CheckOutputFolder(const std::filesystem::path& path, std::string_view option);

// Creates `path` with its missing parents; unless Keep() is called, the destructor removes the
// folders it created again, innermost first, as long as they are empty (never anything else), so
// a failed run leaves no empty output folders behind.
class CreatedFolders {
 public:
  explicit CreatedFolders(const std::filesystem::path& path);
  ~CreatedFolders();
  CreatedFolders(const CreatedFolders&) = delete;
  CreatedFolders& operator=(const CreatedFolders&) = delete;
  void Keep() { created_.clear(); }

 private:
  std::vector<std::filesystem::path> created_;  // innermost first
};

}  // namespace rwkv_embed
