#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using ::rwkv_embed::testing::ExpectThrowMentioning;
using ::rwkv_embed::testing::TempDir;

template <typename T>
std::vector<std::byte> BytesOf(const std::vector<T>& v) {
  std::vector<std::byte> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<std::byte> ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

// A safetensors file with a hand-written header (no padding) and `data_bytes` zero bytes.
fs::path WriteRaw(const fs::path& path, const std::string& header, size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(data_bytes, '\0');
  return path;
}

// A corrupt single file: the error must be a FormatError naming the file and `parts`.
void ExpectCorrupt(const std::string& header, size_t data_bytes,
                   const std::vector<std::string>& parts) {
  const fs::path p = WriteRaw(TempDir() / "bad.safetensors", header, data_bytes);
  std::vector<std::string> all = parts;
  all.push_back(p.string());
  ExpectThrowMentioning<FormatError>([&] { SafetensorsFile::Open(p); }, all);
}

// ---------------------------------------------------------------------------------------------
// The shared checkpoints. Expected values were read with Python's json + numpy from the raw
// bytes (BF16 widened by << 16), independently of this reader.

TEST(SafetensorsTest, OpensTinyBf16Model) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv6-bf16");
  const TensorStore store = TensorStore::Open(dir);  // directory -> model.safetensors
  // 91 header entries = 90 tensors + "__metadata__".
  const std::vector<std::string> names = store.Names();
  EXPECT_EQ(names.size(), 90u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(store.TotalBytes(), 35189760u);  // file size 35199248 - 8 - header 9480
  const TensorView& w2 = store.Get("rwkv.blocks.0.attention.time_maa_w2");
  EXPECT_EQ(w2.dtype, DType::kBF16);
  EXPECT_EQ(w2.shape, (std::vector<int64_t>{5, 32, 128}));
  EXPECT_EQ(w2.ShapeString(), "[5, 32, 128]");
  EXPECT_EQ(w2.numel(), 5 * 32 * 128);
  ASSERT_NE(w2.file, nullptr);
  EXPECT_EQ(*w2.file, dir / "model.safetensors");
  const std::vector<float> v = ToFloat32(w2);
  ASSERT_EQ(v.size(), 20480u);
  // Raw BF16 words 0x3da2 0x3d6b 0x3c06 0xbd67 ... 0xbd30, exact as binary fractions.
  EXPECT_EQ(v[0], 0.0791015625f);
  EXPECT_EQ(v[1], 0.057373046875f);
  EXPECT_EQ(v[2], 0.0081787109375f);
  EXPECT_EQ(v[3], -0.056396484375f);
  EXPECT_EQ(v.back(), -0.04296875f);
  EXPECT_NEAR(std::accumulate(v.begin(), v.end(), 0.0), -19.788674116134644, 1e-9);
  for (const std::string& name : store.Names()) {
    EXPECT_EQ(FindNonFinite(store.Get(name)), std::nullopt) << name;
  }
  const SafetensorsFile f = SafetensorsFile::Open(dir / "model.safetensors");
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(f.tensors().size(), 90u);
}

TEST(SafetensorsTest, OpensTinyF32Model) {
  RWKV_EMBED_REQUIRE_SHARED(path, "models/tiny-rwkv6-f32/model.safetensors");
  const TensorStore store = TensorStore::Open(path);
  EXPECT_EQ(store.Names().size(), 62u);  // 63 header entries incl. "__metadata__"
  EXPECT_EQ(store.Describe(), path.string());
  for (const std::string& name : store.Names()) EXPECT_EQ(store.Get(name).dtype, DType::kF32);
  const TensorView& w2 = store.Get("rwkv.blocks.0.attention.time_maa_w2");
  EXPECT_EQ(w2.shape, (std::vector<int64_t>{5, 16, 64}));  // non-default LoRA dim 16
  const TensorView& emb = store.Get("rwkv.embeddings.weight");
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{65536, 64}));
  const std::vector<float> e = ToFloat32(emb);
  EXPECT_EQ(e[0], -1.3976184f);
  EXPECT_EQ(e[1], -1.2040095f);
  EXPECT_EQ(e.back(), 1.1819749f);
  EXPECT_NEAR(std::accumulate(e.begin(), e.end(), 0.0), 75.2978779291833, 1e-6);
  // Zero-copy: views point into one mapping at their header offsets (head.weight at 0,
  // rwkv.embeddings.weight at 17293824), not into copies.
  const TensorView& head = store.Get("head.weight");
  EXPECT_EQ(emb.bytes.data() - head.bytes.data(), 17293824);
}

// golden.safetensors: seq{i}.layers [L+2, T_i, C] with T_i = len(ids) in golden.json, and
// seq{i}.mean must be the mean of seq{i}.layers over tokens (a check that the bytes are read
// from the right offsets).
void CheckGolden(const fs::path& dir, int64_t layers, int64_t hidden) {
  const TensorStore store = TensorStore::Open(dir / "golden.safetensors");
  std::ifstream in(dir / "golden.json");
  const nlohmann::json golden = nlohmann::json::parse(in);
  const auto& seqs = golden.at("sequences");
  ASSERT_EQ(seqs.size(), 9u);
  EXPECT_EQ(store.Names().size(), 27u);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::string prefix = "seq" + std::to_string(i);
    const auto tokens = static_cast<int64_t>(seqs[i].at("ids").size());
    const TensorView& all = store.Get(prefix + ".layers");
    const TensorView& mean = store.Get(prefix + ".mean");
    EXPECT_EQ(all.shape, (std::vector<int64_t>{layers, tokens, hidden})) << prefix;
    EXPECT_EQ(mean.shape, (std::vector<int64_t>{layers, hidden})) << prefix;
    EXPECT_EQ(store.Get(prefix + ".last_logits").shape, (std::vector<int64_t>{65536})) << prefix;
    const std::vector<float> h = ToFloat32(all);
    std::vector<float> recomputed(layers * hidden, 0.0f);
    for (int64_t l = 0; l < layers; ++l) {
      for (int64_t c = 0; c < hidden; ++c) {
        double sum = 0;
        for (int64_t t = 0; t < tokens; ++t) sum += h[(l * tokens + t) * hidden + c];
        recomputed[l * hidden + c] = static_cast<float>(sum / tokens);
      }
    }
    const auto report = testing::CompareClose(recomputed, ToFloat32(mean), 1e-6, 1e-5);
    EXPECT_EQ(report.violations, 0u) << prefix << ": " << report.Describe();
  }
}

TEST(SafetensorsTest, OpensGoldenFiles) {
  RWKV_EMBED_REQUIRE_SHARED(bf16, "models/tiny-rwkv6-bf16/golden.safetensors");
  RWKV_EMBED_REQUIRE_SHARED(f32, "models/tiny-rwkv6-f32/golden.safetensors");
  CheckGolden(bf16.parent_path(), 3 + 2, 128);
  CheckGolden(f32.parent_path(), 2 + 2, 64);
  const std::vector<float> x = ToFloat32(TensorStore::Open(bf16).Get("seq0.layers"));
  EXPECT_EQ(x[0], 0.27068967f);
  EXPECT_EQ(x[1], 1.9874691f);
  EXPECT_EQ(x.back(), -0.675657f);
}

// ---------------------------------------------------------------------------------------------
// Writing and reading back

TEST(SafetensorsTest, RoundTripsEveryDtype) {
  const std::vector<float> values = {-2.0f, -1.0f, 0.0f,
                                     1.0f,  2.5f,  100.0f};  // exact in all floats
  std::vector<uint16_t> f16, bf16;
  for (float v : values) {
    f16.push_back(F32ToF16(v));
    bf16.push_back(F32ToBf16(v));
  }
  const std::vector<TensorToWrite> tensors = {
      {"f64", DType::kF64, {2, 3}, BytesOf(std::vector<double>{-2, -1, 0, 1, 2.5, 100})},
      {"f32", DType::kF32, {6}, BytesOf(values)},
      {"f16", DType::kF16, {3, 2}, BytesOf(f16)},
      {"bf16", DType::kBF16, {1, 6}, BytesOf(bf16)},
      {"i64", DType::kI64, {3}, BytesOf(std::vector<int64_t>{-5, 0, 1LL << 40})},
      {"i32", DType::kI32, {3}, BytesOf(std::vector<int32_t>{-7, 0, 123456})},
      {"i16", DType::kI16, {3}, BytesOf(std::vector<int16_t>{-32768, 0, 32767})},
      {"i8", DType::kI8, {3}, BytesOf(std::vector<int8_t>{-128, 0, 127})},
      {"u8", DType::kU8, {3}, BytesOf(std::vector<uint8_t>{0, 7, 255})},
      {"bool", DType::kBool, {3}, BytesOf(std::vector<uint8_t>{1, 0, 1})},
      {"scalar", DType::kF32, {}, BytesOf(std::vector<float>{42.0f})},
      {"empty", DType::kF32, {0, 4}, {}},
  };
  const fs::path p = TempDir() / "all.safetensors";
  WriteSafetensors(p, tensors, {{"format", "pt"}, {"note", "round trip"}});
  const SafetensorsFile f = SafetensorsFile::Open(p);
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}}));
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (const TensorToWrite& w : tensors) {
    const TensorView* t = f.Find(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->dtype, w.dtype) << w.name;
    EXPECT_EQ(t->shape, w.shape) << w.name;
    EXPECT_EQ(std::vector<std::byte>(t->bytes.begin(), t->bytes.end()), w.bytes) << w.name;
    EXPECT_EQ(*t->file, p);
  }
  for (const char* name : {"f64", "f32", "f16", "bf16"}) {
    EXPECT_EQ(ToFloat32(*f.Find(name)), values) << name;
  }
  EXPECT_EQ(ToFloat32(*f.Find("i64")), (std::vector<float>{-5, 0, 1099511627776.0f}));
  EXPECT_EQ(ToFloat32(*f.Find("i32")), (std::vector<float>{-7, 0, 123456}));
  EXPECT_EQ(ToFloat32(*f.Find("i16")), (std::vector<float>{-32768, 0, 32767}));
  EXPECT_EQ(ToFloat32(*f.Find("i8")), (std::vector<float>{-128, 0, 127}));
  EXPECT_EQ(ToFloat32(*f.Find("u8")), (std::vector<float>{0, 7, 255}));
  EXPECT_EQ(ToFloat32(*f.Find("bool")), (std::vector<float>{1, 0, 1}));
  EXPECT_EQ(ToFloat32(*f.Find("scalar")), (std::vector<float>{42}));
  EXPECT_EQ(f.Find("scalar")->numel(), 1);
  EXPECT_EQ(f.Find("empty")->numel(), 0);
  EXPECT_TRUE(ToFloat32(*f.Find("empty")).empty());
  EXPECT_EQ(f.Find("missing"), nullptr);

  // Layout as the reference writer: header length a multiple of 8, padded with spaces, data
  // laid out in name order from offset 0.
  const std::vector<std::byte> raw = ReadAll(p);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header(reinterpret_cast<const char*>(raw.data() + 8), n);
  const size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  EXPECT_LT(n - 1 - last, 8u);
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["bf16"]["data_offsets"], nlohmann::json({0, 12}));
  EXPECT_EQ(j["bf16"]["dtype"], "BF16");
  EXPECT_EQ(j["bool"]["data_offsets"], nlohmann::json({12, 15}));
  EXPECT_EQ(j["empty"]["data_offsets"], nlohmann::json({15, 15}));
  EXPECT_EQ(raw.size(), 8 + n + 12 + 3 + 48 + 24 + 12 + 6 + 12 + 24 + 3 + 4 + 3);
}

TEST(SafetensorsTest, WriterRejectsInconsistentTensors) {
  const fs::path dir = TempDir();
  const fs::path p = dir / "w.safetensors";
  ExpectThrowMentioning<ShapeError>(
      [&] {
        WriteSafetensors(p, {{"t", DType::kF32, {2, 2}, std::vector<std::byte>(12)}});
      },
      {"'t'", "12 bytes"});
  ExpectThrowMentioning<UsageError>(
      [&] {
        WriteSafetensors(p, {{"t", DType::kU8, {1}, std::vector<std::byte>(1)},
                             {"t", DType::kU8, {1}, std::vector<std::byte>(1)}});
      },
      {"'t'", "twice"});
  ExpectThrowMentioning<IoError>(
      [&] { WriteSafetensors(dir / "no" / "such" / "dir.safetensors", {}); },
      {"no/such/dir.safetensors"});
}

TEST(SafetensorsTest, ViewsSurviveMoves) {
  const fs::path p = TempDir() / "m.safetensors";
  WriteSafetensors(p, {{"a", DType::kF32, {2}, BytesOf(std::vector<float>{1, 2})}});
  SafetensorsFile f = SafetensorsFile::Open(p);
  const TensorView* before = f.Find("a");
  std::vector<SafetensorsFile> files;
  files.push_back(std::move(f));
  const TensorView* after = files[0].Find("a");
  EXPECT_EQ(after->bytes.data(), before->bytes.data());
  EXPECT_EQ(after->file, &files[0].path());
  EXPECT_EQ(*after->file, p);
  EXPECT_EQ(ToFloat32(*after), (std::vector<float>{1, 2}));

  TensorStore s = TensorStore::Open(p);
  const TensorStore moved = std::move(s);
  EXPECT_EQ(ToFloat32(moved.Get("a")), (std::vector<float>{1, 2}));
}

TEST(MappedFileTest, MapsEmptyFilesAndMoves) {
  const fs::path dir = TempDir();
  const fs::path empty = dir / "empty.bin";
  std::ofstream(empty).close();
  const MappedFile e = MappedFile::Open(empty);
  EXPECT_TRUE(e.bytes().empty());
  EXPECT_EQ(e.path(), empty);

  const fs::path p = dir / "abc.bin";
  std::ofstream(p) << "abc";
  MappedFile a = MappedFile::Open(p);
  ASSERT_EQ(a.bytes().size(), 3u);
  EXPECT_EQ(static_cast<char>(a.bytes()[2]), 'c');
  MappedFile b = std::move(a);
  EXPECT_TRUE(a.bytes().empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(static_cast<char>(b.bytes()[0]), 'a');
  b = MappedFile::Open(empty);
  EXPECT_TRUE(b.bytes().empty());
}

TEST(MappedFileTest, NamesThePathOnFailure) {
  const fs::path dir = TempDir();
  const fs::path missing = dir / "missing.safetensors";
  ExpectThrowMentioning<IoError>([&] { MappedFile::Open(missing); }, {missing.string()});
  ExpectThrowMentioning<IoError>([&] { MappedFile::Open(dir); }, {"not a regular file"});
  ExpectThrowMentioning<IoError>([&] { TensorStore::Open(missing); }, {missing.string()});
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints (transformers' model.safetensors.index.json)

void WriteIndex(const fs::path& path, const nlohmann::json& weight_map) {
  std::ofstream(path)
      << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2);
}

TEST(TensorStoreTest, ReadsShardedCheckpoint) {
  const fs::path dir = TempDir();
  WriteSafetensors(dir / "model-00001-of-00002.safetensors",
                   {{"a.weight", DType::kF32, {2}, BytesOf(std::vector<float>{1, 2})},
                    {"c.weight", DType::kBF16, {1}, BytesOf(std::vector<uint16_t>{0x4040})}});
  WriteSafetensors(
      dir / "model-00002-of-00002.safetensors",
      {{"b.weight", DType::kF16, {2, 1}, BytesOf(std::vector<uint16_t>{0x3c00, 0xc000})}});
  WriteIndex(dir / "model.safetensors.index.json",
             {{"a.weight", "model-00001-of-00002.safetensors"},
              {"b.weight", "model-00002-of-00002.safetensors"},
              {"c.weight", "model-00001-of-00002.safetensors"}});

  for (const fs::path& p : {dir, dir / "model.safetensors.index.json"}) {
    const TensorStore store = TensorStore::Open(p);
    EXPECT_EQ(store.Names(), (std::vector<std::string>{"a.weight", "b.weight", "c.weight"}));
    EXPECT_EQ(ToFloat32(store.Get("a.weight")), (std::vector<float>{1, 2}));
    EXPECT_EQ(ToFloat32(store.Get("b.weight")), (std::vector<float>{1, -2}));
    EXPECT_EQ(ToFloat32(store.Get("c.weight")), (std::vector<float>{3}));
    EXPECT_EQ(*store.Get("b.weight").file, dir / "model-00002-of-00002.safetensors");
    EXPECT_EQ(store.TotalBytes(), 8u + 2u + 4u);
    const std::string desc = store.Describe();
    EXPECT_NE(desc.find("model-00001-of-00002.safetensors"), std::string::npos) << desc;
    EXPECT_NE(desc.find("model-00002-of-00002.safetensors"), std::string::npos) << desc;
    ExpectThrowMentioning<ShapeError>([&] { store.Get("d.weight"); },
                                      {"tensor 'd.weight' not found in ", desc});
  }
}

TEST(TensorStoreTest, DirectoryWithoutCheckpointListsWhatWasLookedFor) {
  const fs::path dir = TempDir();
  ExpectThrowMentioning<IoError>(
      [&] { TensorStore::Open(dir); },
      {dir.string(), "model.safetensors", "model.safetensors.index.json"});
}

TEST(TensorStoreTest, IndexTensorMissingFromItsShard) {
  const fs::path dir = TempDir();
  WriteSafetensors(dir / "s1.safetensors", {{"a", DType::kU8, {1}, {std::byte{1}}}});
  WriteIndex(dir / "model.safetensors.index.json",
             {{"a", "s1.safetensors"}, {"b", "s1.safetensors"}});
  ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(dir); },
                                     {"'b'", (dir / "s1.safetensors").string(), "index.json"});
}

TEST(TensorStoreTest, TensorInTwoShards) {
  const fs::path dir = TempDir();
  WriteSafetensors(dir / "s1.safetensors", {{"a", DType::kU8, {1}, {std::byte{1}}}});
  WriteIndex(dir / "model.safetensors.index.json",
             {{"a", "s1.safetensors"}, {"x", "s2.safetensors"}});
  // s2 holds its own "x" as listed, plus a stray copy of "a": the only fault is the duplicate.
  WriteSafetensors(dir / "s2.safetensors", {{"a", DType::kU8, {1}, {std::byte{2}}},
                                            {"x", DType::kU8, {1}, {std::byte{3}}}});
  ExpectThrowMentioning<FormatError>(
      [&] { TensorStore::Open(dir); },
      {"'a'", "two shards", (dir / "s1.safetensors").string(), (dir / "s2.safetensors").string()});
}

TEST(TensorStoreTest, BadIndexFiles) {
  const fs::path dir = TempDir();
  const fs::path index = dir / "model.safetensors.index.json";
  std::ofstream(index) << "{\"weight_map\": ";
  ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(index); },
                                     {index.string(), "not valid JSON"});
  std::ofstream(index) << "{\"metadata\": {}}";
  ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(index); },
                                     {index.string(), "weight_map"});
  WriteIndex(index, {{"a", 3}});
  ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(index); }, {index.string(), "'a'"});
  WriteIndex(index, {{"a", "absent.safetensors"}});
  ExpectThrowMentioning<IoError>([&] { TensorStore::Open(index); },
                                 {(dir / "absent.safetensors").string()});
}

TEST(TensorStoreTest, FolderWithBothSingleFileAndIndexIsAmbiguous) {
  // Audit finding: a sharded model written over a single-file one left model.safetensors, which
  // the loader preferred, so embeddings silently came from the stale weights.
  const fs::path dir = TempDir();
  WriteSafetensors(dir / "model.safetensors", {{"a", DType::kU8, {1}, {std::byte{1}}}});
  WriteSafetensors(dir / "s1.safetensors", {{"a", DType::kU8, {1}, {std::byte{2}}}});
  WriteIndex(dir / "model.safetensors.index.json", {{"a", "s1.safetensors"}});
  ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(dir); },
                                     {"ambiguous", (dir / "model.safetensors").string(),
                                      (dir / "model.safetensors.index.json").string()});
  // Naming one of them explicitly is not ambiguous.
  EXPECT_EQ(ToFloat32(TensorStore::Open(dir / "model.safetensors").Get("a")),
            std::vector<float>{1});
  EXPECT_EQ(ToFloat32(TensorStore::Open(dir / "model.safetensors.index.json").Get("a")),
            std::vector<float>{2});
}

TEST(TensorStoreTest, ShardPathsStayInsideTheModelFolder) {
  // Audit finding: weight_map entries such as "../x" or "/etc/passwd" were opened and mapped.
  const fs::path root = TempDir();
  const fs::path dir = root / "model";
  fs::create_directories(dir / "sub");
  const fs::path index = dir / "model.safetensors.index.json";
  WriteSafetensors(root / "outside.safetensors", {{"a", DType::kU8, {1}, {std::byte{1}}}});
  WriteSafetensors(dir / "sub/inside.safetensors", {{"a", DType::kU8, {1}, {std::byte{2}}}});

  const auto expect_refused = [&](const std::string& shard, const std::string& why) {
    WriteIndex(index, {{"a", shard}});
    ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(dir); },
                                       {index.string(), "tensor 'a'", "'" + shard + "'", why});
  };
  expect_refused("../outside.safetensors", "'..'");
  expect_refused("sub/../../outside.safetensors", "'..'");
  expect_refused((root / "outside.safetensors").string(), "absolute path");
  expect_refused("/etc/passwd", "absolute path");
  expect_refused("", "empty file name");
  fs::create_symlink(root / "outside.safetensors", dir / "link.safetensors");
  expect_refused("link.safetensors", "outside the model folder");
  fs::create_directory_symlink(root, dir / "up");
  expect_refused("up/outside.safetensors", "outside the model folder");

  // Subfolders and symbolic links that stay inside are fine.
  WriteIndex(index, {{"a", "sub/inside.safetensors"}});
  EXPECT_EQ(ToFloat32(TensorStore::Open(dir).Get("a")), std::vector<float>{2});
  fs::create_symlink("sub/inside.safetensors", dir / "in-link.safetensors");
  WriteIndex(index, {{"a", "in-link.safetensors"}});
  EXPECT_EQ(ToFloat32(TensorStore::Open(dir).Get("a")), std::vector<float>{2});
}

TEST(TensorStoreTest, HubCacheSnapshotLinksIntoBlobsAreAllowed) {
  // huggingface_hub's cache: models--org--name/snapshots/REV/FILE -> ../../blobs/HASH.
  const fs::path repo = TempDir() / "models--RWKV--tiny";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots/0123abc");
  const fs::path snap = repo / "snapshots/0123abc";
  WriteSafetensors(repo / "blobs/deadbeef", {{"a", DType::kU8, {1}, {std::byte{7}}}});
  fs::create_symlink("../../blobs/deadbeef", snap / "model-00001-of-00001.safetensors");
  WriteIndex(snap / "model.safetensors.index.json", {{"a", "model-00001-of-00001.safetensors"}});
  EXPECT_EQ(ToFloat32(TensorStore::Open(snap).Get("a")), std::vector<float>{7});
  // ... but not elsewhere in the cache.
  WriteSafetensors(repo / "other.safetensors", {{"a", DType::kU8, {1}, {std::byte{8}}}});
  fs::create_symlink("../../other.safetensors", snap / "x.safetensors");
  WriteIndex(snap / "model.safetensors.index.json", {{"a", "x.safetensors"}});
  ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(snap); },
                                     {"outside the model folder"});
}

TEST(TensorStoreTest, HugeIndexIsRefusedBeforeReading) {
  const fs::path index = TempDir() / "model.safetensors.index.json";
  std::ofstream(index) << "{";
  fs::resize_file(index, 1ull << 33);  // sparse: 8 GiB of nothing, never read
  ExpectThrowMentioning<FormatError>([&] { TensorStore::Open(index); },
                                     {index.string(), "8589934592 bytes"});
}

// ---------------------------------------------------------------------------------------------
// Corrupt single files: one test per check in SafetensorsFile::Open.

const std::string kGoodEntry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST(SafetensorsCorruptTest, ValidBaseline) {
  // The hand-written base used below is itself valid, so each test isolates one fault.
  const fs::path p = WriteRaw(TempDir() / "ok.safetensors", R"({"w":)" + kGoodEntry + "}", 8);
  EXPECT_EQ(SafetensorsFile::Open(p).Find("w")->numel(), 2);
}

TEST(SafetensorsCorruptTest, ShorterThanEightBytes) {
  const fs::path dir = TempDir();
  const fs::path p = dir / "short.safetensors";
  std::ofstream(p) << "abc";
  ExpectThrowMentioning<FormatError>([&] { SafetensorsFile::Open(p); },
                                     {p.string(), "shorter than"});
  const fs::path e = dir / "empty.safetensors";
  std::ofstream(e).close();
  ExpectThrowMentioning<FormatError>([&] { SafetensorsFile::Open(e); },
                                     {e.string(), "shorter than"});
}

TEST(SafetensorsCorruptTest, HeaderLengthBeyondFile) {
  const fs::path p = TempDir() / "long.safetensors";
  std::ofstream out(p, std::ios::binary);
  const uint64_t n = 1000;
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << "{}";
  out.close();
  ExpectThrowMentioning<FormatError>([&] { SafetensorsFile::Open(p); },
                                     {p.string(), "header length 1000"});
}

TEST(SafetensorsCorruptTest, AbsurdHeaderLength) {
  const fs::path p = TempDir() / "absurd.safetensors";
  std::ofstream out(p, std::ios::binary);
  const uint64_t n = std::numeric_limits<uint64_t>::max() - 3;  // would wrap 8 + n
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << "{}";
  out.close();
  ExpectThrowMentioning<FormatError>([&] { SafetensorsFile::Open(p); },
                                     {p.string(), "header length"});
}

TEST(SafetensorsCorruptTest, InvalidJson) {
  ExpectCorrupt(R"({"w": {"dtype": "F32",)", 0, {"not valid JSON"});
}

TEST(SafetensorsCorruptTest, HeaderNotAnObject) {
  ExpectCorrupt("[1, 2]", 0, {"not a JSON object"});
}

TEST(SafetensorsCorruptTest, EntryNotAnObject) {
  ExpectCorrupt(R"({"w": [0, 8]})", 8, {"'w'", "not a JSON object"});
}

TEST(SafetensorsCorruptTest, MissingFields) {
  ExpectCorrupt(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8, {"'w'", "'dtype'"});
  ExpectCorrupt(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8, {"'w'", "'shape'"});
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[2]}})", 8, {"'w'", "'data_offsets'"});
}

TEST(SafetensorsCorruptTest, WrongJsonTypes) {
  ExpectCorrupt(R"({"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", 8, {"'w'", "dtype"});
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8, {"'w'", "shape"});
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8,
                {"'w'", "non-integer"});
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", 8,
                {"'w'", "data_offsets"});
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":{"a":0}}})", 8,
                {"'w'", "data_offsets"});
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8,
                {"'w'", "non-negative"});
  ExpectCorrupt(R"({"__metadata__":{"format":1},"w":)" + kGoodEntry + "}", 8,
                {"__metadata__", "'format'"});
  ExpectCorrupt(R"({"__metadata__":"pt","w":)" + kGoodEntry + "}", 8, {"__metadata__"});
}

TEST(SafetensorsCorruptTest, UnknownDtype) {
  ExpectCorrupt(R"({"w":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", 8,
                {"'w'", "unknown dtype 'F17'"});
  ExpectCorrupt(R"({"w":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", 8,
                {"'w'", "unknown dtype 'f32'"});
}

TEST(SafetensorsCorruptTest, Float8IsUnsupported) {
  ExpectCorrupt(R"({"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", 8,
                {"'w'", "unsupported dtype 'F8_E4M3'"});
  ExpectCorrupt(R"({"w":{"dtype":"F8_E5M2","shape":[8],"data_offsets":[0,8]}})", 8,
                {"'w'", "unsupported dtype 'F8_E5M2'"});
}

TEST(SafetensorsCorruptTest, NegativeDimension) {
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
                {"'w'", "negative"});
  // Two negatives whose product is the right size must not slip through.
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[-1,-2],"data_offsets":[0,8]}})", 8,
                {"'w'", "negative"});
}

TEST(SafetensorsCorruptTest, ShapeByteSizeMismatch) {
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12,
                {"'w'", "shape/byte-size mismatch", "[3]", "12", "span 8"});
  ExpectCorrupt(R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 8,
                {"'w'", "shape/byte-size mismatch"});
  // numel * 4 overflows 64 bits: must be a mismatch, not a wrapped small size.
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", 0,
                {"'w'", "shape/byte-size mismatch"});
}

TEST(SafetensorsCorruptTest, BeginAfterEnd) {
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8,
                {"'w'", "begin > end"});
}

TEST(SafetensorsCorruptTest, OffsetsOutOfRange) {
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 7,
                {"'w'", "out of range", "7 bytes"});
  ExpectCorrupt(
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
      8, {"'w'", "out of range"});
}

TEST(SafetensorsCorruptTest, OverlappingTensors) {
  ExpectCorrupt(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12, {"'b'", "overlap", "'a'"});
  // Same begin (one tensor aliasing another) is an overlap too; the file order does not matter.
  ExpectCorrupt(R"({"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                8, {"overlap"});
}

TEST(SafetensorsCorruptTest, DataRegionMustBeCoveredExactly) {
  // Audit finding: a header length one byte short still parsed (the JSON ends in padding) and
  // every tensor was read one byte off. The shared BF16 model, re-headed with length n - 1:
  RWKV_EMBED_REQUIRE_SHARED(model, "models/tiny-rwkv6-bf16/model.safetensors");
  std::vector<std::byte> bytes = ReadAll(model);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_EQ(static_cast<char>(bytes[8 + n - 1]), ' ') << "the shared header has no padding";
  --n;
  std::memcpy(bytes.data(), &n, 8);
  const fs::path p = TempDir() / "short-header.safetensors";
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  ExpectThrowMentioning<FormatError>([&] { SafetensorsFile::Open(p); },
                                     {p.string(), "1 byte(s) at the end of the data region",
                                      "not covered by any tensor", "header length"});

  // Bytes before the first tensor, between two tensors, after the last one.
  ExpectCorrupt(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
                {"'w'", "bytes [0, 4)", "gap at the start"});
  ExpectCorrupt(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}})",
                10, {"'b'", "bytes [4, 6)", "after tensor 'a'"});
  ExpectCorrupt(R"({"w":)" + kGoodEntry + "}", 9, {"1 byte(s)", "8..9", "'w'"});
  ExpectCorrupt("{}", 3, {"3 byte(s)", "not covered"});
  // Empty tensors take no bytes: legal at a tensor boundary, not inside another tensor.
  const fs::path ok = WriteRaw(
      TempDir() / "empty-ok.safetensors",
      R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"w":)" + kGoodEntry + "}", 8);
  EXPECT_EQ(SafetensorsFile::Open(ok).tensors().size(), 2u);
  ExpectCorrupt(R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"w":)" + kGoodEntry + "}",
                8, {"'e'", "overlap", "'w'"});
}

TEST(SafetensorsCorruptTest, DuplicateTensorName) {
  ExpectCorrupt(
      R"({"w":)" + kGoodEntry + R"(,"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12,
      {"'w'", "twice"});
}

TEST(SafetensorsCorruptTest, EveryTruncationAndByteFlipIsAFormatErrorOrValid) {
  // Damage a small valid file in every single way (each prefix, each header byte replaced by a
  // few values); Open must either succeed with in-range views or throw FormatError, never crash.
  const fs::path dir = TempDir();
  WriteSafetensors(dir / "ok.safetensors",
                   {{"a", DType::kF32, {2}, BytesOf(std::vector<float>{1, 2})},
                    {"b", DType::kBF16, {1, 3}, BytesOf(std::vector<uint16_t>{1, 2, 3})}},
                   {{"format", "pt"}});
  const std::vector<std::byte> good = ReadAll(dir / "ok.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  const fs::path p = dir / "damaged.safetensors";
  // Returns whether the damaged bytes opened.
  const auto try_open = [&](const std::vector<std::byte>& bytes) {
    // Unlink rather than truncate: ext4 flushes truncated-and-rewritten files (auto_da_alloc).
    fs::remove(p);
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    try {
      const SafetensorsFile f = SafetensorsFile::Open(p);
      for (const TensorView& t : f.tensors()) {
        EXPECT_EQ(t.bytes.size(), static_cast<size_t>(t.numel()) * DTypeSize(t.dtype));
        ToFloat32(t);  // reads every byte of the view: out-of-range views trip ASan (debug preset)
      }
      return true;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      return false;
    }
  };
  for (size_t n = 0; n < good.size(); ++n) {
    // The last tensor ends at the end of the file, so every truncation loses something.
    EXPECT_FALSE(try_open(std::vector<std::byte>(good.begin(), good.begin() + n))) << n;
  }
  size_t opened = 0;
  for (size_t i = 0; i < 8 + header_len; ++i) {
    for (unsigned char c : {'\0', '"', '9', '-', '}', 'A', '\xff'}) {
      std::vector<std::byte> bytes = good;
      bytes[i] = static_cast<std::byte>(c);
      opened += try_open(bytes) ? 1 : 0;
    }
  }
  EXPECT_GT(opened, 0u);  // e.g. flips inside the metadata value or header padding stay valid
}

// ---------------------------------------------------------------------------------------------
// F16 / BF16 conversions (core/dtype.h). Expected bit patterns from IEEE 754 binary16 and
// bfloat16 definitions; ties round to even.

float Pow2(int e) { return std::ldexp(1.0f, e); }

TEST(DTypeTest, F16ToF32SpecialValues) {
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);          // largest finite
  EXPECT_EQ(F16ToF32(0x0400), Pow2(-14));         // smallest normal
  EXPECT_EQ(F16ToF32(0x0001), Pow2(-24));         // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03ff), 1023 * Pow2(-24));  // largest subnormal
  EXPECT_EQ(F16ToF32(0x8001), -Pow2(-24));
  EXPECT_EQ(F16ToF32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToF32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToF32(0x7e00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7c01)));  // signalling NaN stays NaN, never Inf
  EXPECT_EQ(F16ToF32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(F16ToF32(0x8000)));
}

TEST(DTypeTest, F32ToF16RoundsToNearestEven) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToF16(1.0f + Pow2(-11)), 0x3c00);              // tie -> even (down)
  EXPECT_EQ(F32ToF16(1.0f + 3 * Pow2(-11)), 0x3c02);          // tie -> even (up)
  EXPECT_EQ(F32ToF16(1.0f + Pow2(-11) + Pow2(-20)), 0x3c01);  // just above the tie
  EXPECT_EQ(F32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65519.99f), 0x7bff);  // below the tie with Inf
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);   // tie with Inf -> even = Inf
  EXPECT_EQ(F32ToF16(1e6f), 0x7c00);
  EXPECT_EQ(F32ToF16(-std::numeric_limits<float>::infinity()), 0xfc00);
  const uint16_t nan = F32ToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  // Subnormals: multiples of 2^-24, ties to even.
  EXPECT_EQ(F32ToF16(Pow2(-24)), 0x0001);
  EXPECT_EQ(F32ToF16(Pow2(-25)), 0x0000);              // 0.5 ulp -> 0 (even)
  EXPECT_EQ(F32ToF16(3 * Pow2(-25)), 0x0002);          // 1.5 ulp -> 2 (even)
  EXPECT_EQ(F32ToF16(Pow2(-25) + Pow2(-40)), 0x0001);  // above the tie
  EXPECT_EQ(F32ToF16(-Pow2(-24)), 0x8001);
  EXPECT_EQ(F32ToF16(1023.5f * Pow2(-24)), 0x0400);  // largest subnormal rounds up to normal
  EXPECT_EQ(F32ToF16(1e-10f), 0x0000);
}

TEST(DTypeTest, F16RoundTripsEveryBitPattern) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f)))) << h;
    } else {
      ASSERT_EQ(F32ToF16(f), h) << "bit pattern " << h;
    }
  }
}

TEST(DTypeTest, Bf16Conversions) {
  EXPECT_EQ(Bf16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(Bf16ToF32(0xc040), -3.0f);
  EXPECT_EQ(Bf16ToF32(0x0001), std::bit_cast<float>(0x00010000u));  // subnormal
  EXPECT_EQ(Bf16ToF32(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Bf16ToF32(0x7fc0)));
  EXPECT_EQ(F32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBf16(1.0f + Pow2(-8)), 0x3f80);                    // tie -> even (down)
  EXPECT_EQ(F32ToBf16(1.0f + 3 * Pow2(-8)), 0x3f82);                // tie -> even (up)
  EXPECT_EQ(F32ToBf16(1.0f + Pow2(-8) + Pow2(-20)), 0x3f81);        // above the tie
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to Inf, as torch
  EXPECT_EQ(F32ToBf16(-std::numeric_limits<float>::infinity()), 0xff80);
  // A NaN whose payload is only in the low 16 bits must not truncate to Inf.
  const uint16_t nan = F32ToBf16(std::bit_cast<float>(0x7f800001u));
  EXPECT_TRUE(std::isnan(Bf16ToF32(nan)));
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = Bf16ToF32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(F32ToBf16(f), h) << "bit pattern " << h;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// FindNonFinite / ToFloat32 keep NaN and Inf visible

template <typename T>
TensorView ViewOf(const std::vector<T>& v, DType dtype) {
  TensorView t;
  t.name = "t";
  t.dtype = dtype;
  t.shape = {static_cast<int64_t>(v.size())};
  t.bytes = std::as_bytes(std::span<const T>(v));
  return t;
}

TEST(FindNonFiniteTest, FindsFirstNanOrInf) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float max = std::numeric_limits<float>::max();
  const float denorm = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<float>{0, max, -max, denorm}, DType::kF32)),
            std::nullopt);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<float>{0, 1, 2, nan, inf}, DType::kF32)), 3);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<float>{0, -inf, nan}, DType::kF32)), 1);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<double>{1e308, 0, -std::nan("")}, DType::kF64)), 2);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<double>{1e308, -1e308}, DType::kF64)), std::nullopt);
  // F16: 0x7bff (65504) and subnormals are finite; 0x7c00 is Inf, 0xfe00 a NaN.
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<uint16_t>{0x7bff, 0x0001, 0xfbff}, DType::kF16)),
            std::nullopt);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<uint16_t>{0x3c00, 0x3c00, 0x7c00}, DType::kF16)), 2);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<uint16_t>{0xfe00}, DType::kF16)), 0);
  // BF16: 0x7f7f is the largest finite; 0x7fc0 NaN, 0xff80 -Inf.
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<uint16_t>{0x7f7f, 0x0001}, DType::kBF16)),
            std::nullopt);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<uint16_t>{0x3f80, 0x7fc0}, DType::kBF16)), 1);
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<uint16_t>{0xff80}, DType::kBF16)), 0);
  // Integers are always finite, including bit patterns that would be NaN as floats.
  EXPECT_EQ(FindNonFinite(ViewOf(std::vector<int32_t>{0x7fc00000, -1}, DType::kI32)), std::nullopt);
}

TEST(FindNonFiniteTest, ToFloat32KeepsNanAndInf) {
  const std::vector<float> f16 =
      ToFloat32(ViewOf(std::vector<uint16_t>{0x7e00, 0xfc00, 0x0001}, DType::kF16));
  EXPECT_TRUE(std::isnan(f16[0]));
  EXPECT_EQ(f16[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16[2], Pow2(-24));
  const std::vector<float> f64 =
      ToFloat32(ViewOf(std::vector<double>{std::nan(""), 1e300, 0.1}, DType::kF64));
  EXPECT_TRUE(std::isnan(f64[0]));
  EXPECT_EQ(f64[1], std::numeric_limits<float>::infinity());  // out of float range
  EXPECT_EQ(f64[2], 0.1f);
}

}  // namespace
}  // namespace rwkv_embed
