// WorldTokenizer throughput on the 23,504 golden texts (MRPC + STS-B sentences and edge cases).
// Reports texts/s (items) and MB/s (bytes). Finds ../shared through RWKV_EMBED_SHARED, else the
// shared/ folder beside the checkout.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/utf8.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed {
namespace {

std::filesystem::path SharedDir() {
  if (const char* env = std::getenv("RWKV_EMBED_SHARED"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "shared";
}

struct Corpus {
  std::vector<std::string> texts;
  size_t bytes = 0;
};

const Corpus& GoldenTexts() {
  static const Corpus corpus = [] {
    Corpus c;
    std::ifstream in(SharedDir() / "data" / "tokenizer-golden.jsonl");
    std::string line;
    for (int line_no = 1; std::getline(in, line); ++line_no) {
      try {
        c.texts.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
      } catch (const nlohmann::json::exception& e) {  // typed, naming the line
        throw FormatError("tokenizer-golden.jsonl line " + std::to_string(line_no) + ": " +
                          EscapeForMessage(e.what()));
      }
      c.bytes += c.texts.back().size();
    }
    return c;
  }();
  return corpus;
}

void BM_EncodeGolden(benchmark::State& state) {
  const auto vocab = SharedDir() / "models" / std::string(WorldTokenizer::kVocabFileName);
  if (!std::filesystem::exists(vocab)) {
    state.SkipWithError("shared vocabulary absent (set RWKV_EMBED_SHARED)");
    return;
  }
  const WorldTokenizer tok = WorldTokenizer::FromVocabFile(vocab);
  const Corpus& corpus = GoldenTexts();
  std::vector<int32_t> ids;
  ids.reserve(1 << 20);
  size_t tokens = 0;
  for (auto _ : state) {
    ids.clear();
    for (const auto& t : corpus.texts) tok.EncodeAppend(t, ids);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * corpus.texts.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * corpus.bytes));
  state.counters["tokens"] = static_cast<double>(tokens);
}
BENCHMARK(BM_EncodeGolden)->Unit(benchmark::kMillisecond);

void BM_LoadVocab(benchmark::State& state) {
  const auto vocab = SharedDir() / "models" / std::string(WorldTokenizer::kVocabFileName);
  if (!std::filesystem::exists(vocab)) {
    state.SkipWithError("shared vocabulary absent (set RWKV_EMBED_SHARED)");
    return;
  }
  for (auto _ : state) {
    auto tok = WorldTokenizer::FromVocabFile(vocab);
    benchmark::DoNotOptimize(tok.vocab_size());
  }
}
BENCHMARK(BM_LoadVocab)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace rwkv_embed

BENCHMARK_MAIN();
