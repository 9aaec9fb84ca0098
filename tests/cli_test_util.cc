#include "cli_test_util.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace rwkv_embed::testing {

nlohmann::json ReadJson(const std::filesystem::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in) << p;
  return nlohmann::json::parse(in);
}

void CopyHead(const std::filesystem::path& from, const std::filesystem::path& to, int lines) {
  std::filesystem::create_directories(to.parent_path());
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  std::string line;
  for (int i = 0; i < lines && std::getline(in, line); ++i) out << line << "\n";
}

std::filesystem::path SmallData(const std::filesystem::path& scratch) {
  const auto shared = SharedDir() / "data";
  auto dir = scratch / "data";
  CopyHead(shared / "mrpc/train.tsv", dir / "mrpc/train.tsv", 41);
  CopyHead(shared / "mrpc/dev.tsv", dir / "mrpc/dev.tsv", 31);
  CopyHead(shared / "mrpc/msr_paraphrase_test.txt", dir / "mrpc/msr_paraphrase_test.txt", 21);
  for (const char* s : {"train", "dev", "test"}) {
    CopyHead(shared / "stsb" / (std::string("sts-") + s + ".tsv"),
             dir / "stsb" / (std::string("sts-") + s + ".tsv"), 20);
  }
  return dir;
}

std::vector<std::string> EvalMrpcDevArgs(const std::filesystem::path& data_dir) {
  return {"eval", "--task", "mrpc", "--split", "dev", "--data-dir", data_dir.string()};
}

}  // namespace rwkv_embed::testing
