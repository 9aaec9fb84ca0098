// Helpers shared by the end-to-end CLI tests: reading their JSON outputs and the small data
// folders, cut from ../shared/data, that keep each run to seconds.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rwkv_embed::testing {

// The JSON file at `p` (a failed expectation naming `p` when it cannot be opened).
nlohmann::json ReadJson(const std::filesystem::path& p);

// Writes the first `lines` lines of `from` to `to`, creating to's folder.
void CopyHead(const std::filesystem::path& from, const std::filesystem::path& to, int lines);

// scratch/data laid out like ../shared/data with 40 MRPC train, 30 dev and 20 test pairs and 20
// STS-B pairs per split (the header lines of the MRPC files count): the same files with the same
// quirks (BOM, unbalanced quotes, extra STS-B columns). Returns the folder.
std::filesystem::path SmallData(const std::filesystem::path& scratch);

// `eval --task mrpc --split dev --data-dir DATA_DIR`, for the caller to add a method and options.
std::vector<std::string> EvalMrpcDevArgs(const std::filesystem::path& data_dir);

}  // namespace rwkv_embed::testing
