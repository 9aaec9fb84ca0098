// PyTorch checkpoints read without Python: the shared .pth files against their safetensors twins,
// convert round trips, the model loader on .pth folders and files, and hostile archives (each a
// FormatError naming the file and the key, opcode or offset; never a crash). Test archives are
// assembled here: a stored zip writer and hand-written protocol-2 pickles as torch.save emits them.
#include "io/pth.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pickle.h"
#include "io/safetensors.h"
#include "io/zip.h"
#include "model/rwkv6/rwkv6_weights.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using testing::ExpectThrowMentioning;
using testing::ReadFile;
using testing::RunCli;
using testing::TempDir;

constexpr const char* kRwkvCppPth = "models/rwkv.cpp-tiny-rwkv7/model.pth";
constexpr const char* kRwkvCppSafetensors = "models/rwkv.cpp-tiny-rwkv7/model.safetensors";
constexpr const char* kEmbRwkvPth = "models/tiny-embrwkv-bf16/model.pth";
constexpr const char* kRwkv6F32 = "models/tiny-rwkv6-f32/model.safetensors";
const fs::path kMemoryName = "memory.pth";

// ---------------------------------------------------------------------------------------------
// Writers

void PutLe(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

// Pickle fragments, protocol 2 as torch.save writes it.
namespace pk {
std::string Str(std::string_view s) {
  std::string o = "X";
  PutLe(o, s.size(), 4);
  return o + std::string(s);
}
std::string Int(int64_t v) {
  std::string o;
  if (v >= 0 && v < 256) {
    o = "K";
    PutLe(o, static_cast<uint64_t>(v), 1);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    o = "J";
    PutLe(o, static_cast<uint64_t>(v), 4);
  } else {
    o = "\x8a\x08";
    PutLe(o, static_cast<uint64_t>(v), 8);
  }
  return o;
}
std::string Global(std::string_view module, std::string_view name) {
  return "c" + std::string(module) + "\n" + std::string(name) + "\n";
}
std::string Tuple(const std::vector<std::string>& items) {
  std::string o = "(";
  for (const auto& i : items) o += i;
  return o + "t";
}
std::string Ints(const std::vector<int64_t>& v) {
  std::vector<std::string> items;
  for (int64_t x : v) items.push_back(Int(x));
  return Tuple(items);
}
std::string OrderedDict() { return Global("collections", "OrderedDict") + ")R"; }
}  // namespace pk

struct FakeTensor {
  FakeTensor(std::string name_, std::string key_, int64_t storage_numel_,
             std::vector<int64_t> shape_, int64_t offset_ = 0, std::vector<int64_t> stride_ = {},
             std::string storage_ = "FloatStorage")
      : name(std::move(name_)),
        key(std::move(key_)),
        storage_numel(storage_numel_),
        shape(std::move(shape_)),
        offset(offset_),
        stride(std::move(stride_)),
        storage(std::move(storage_)) {}
  std::string name;
  std::string key;  // storage entry data/<key>
  int64_t storage_numel;
  std::vector<int64_t> shape;
  int64_t offset;
  std::vector<int64_t> stride;  // empty: contiguous
  std::string storage;
};

std::vector<int64_t> ContiguousStride(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t n = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = n;
    n *= shape[i];
  }
  return s;
}

std::string TensorPickle(const FakeTensor& t) {
  const std::string pid = pk::Tuple({pk::Str("storage"), pk::Global("torch", t.storage),
                                     pk::Str(t.key), pk::Str("cpu"), pk::Int(t.storage_numel)});
  const auto stride = t.stride.empty() ? ContiguousStride(t.shape) : t.stride;
  return pk::Global("torch._utils", "_rebuild_tensor_v2") + "((" + pid.substr(1) + "Q" +
         pk::Int(t.offset) + pk::Ints(t.shape) + pk::Ints(stride) + "\x89" + pk::OrderedDict() +
         "tR";
}

// An OrderedDict of `items` (name -> pickled value), as torch.save(state_dict) writes it.
std::string DictPickle(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string o = pk::OrderedDict() + "(";
  for (const auto& [k, v] : items) o += pk::Str(k) + v;
  return o + "u";
}

std::string StateDict(const std::vector<FakeTensor>& tensors) {
  std::vector<std::pair<std::string, std::string>> items;
  for (const auto& t : tensors) items.emplace_back(t.name, TensorPickle(t));
  return "\x80\x02" + DictPickle(items) + ".";
}

struct ZipItem {
  std::string name, data;
  uint16_t method = 0;
  uint16_t flags = 0;
};

struct ZipOptions {
  bool zip64_end = true;     // torch always writes the zip64 end records
  bool zip64_extra = false;  // central sizes/offset saturated, real values in the extra field
};

// A stored zip archive; data aligned to 64 bytes with an "FB" extra field as torch does.
std::string Zip(const std::vector<ZipItem>& items, const ZipOptions& o = {}) {
  std::string out, cd;
  for (const ZipItem& e : items) {
    const uint64_t offset = out.size();
    const size_t pad = (64 - (offset + 30 + e.name.size() + 4) % 64) % 64;
    std::string extra = "FB";
    PutLe(extra, pad, 2);
    extra += std::string(pad, 'Z');
    const uint32_t crc = Crc32(std::as_bytes(std::span(e.data.data(), e.data.size())));
    PutLe(out, 0x04034b50, 4);
    PutLe(out, 20, 2);
    PutLe(out, e.flags, 2);
    PutLe(out, e.method, 2);
    PutLe(out, 0, 4);  // time, date
    PutLe(out, crc, 4);
    PutLe(out, e.data.size(), 4);
    PutLe(out, e.data.size(), 4);
    PutLe(out, e.name.size(), 2);
    PutLe(out, extra.size(), 2);
    out += e.name + extra + e.data;

    std::string z64;
    if (o.zip64_extra) {
      PutLe(z64, 1, 2);
      PutLe(z64, 24, 2);
      PutLe(z64, e.data.size(), 8);
      PutLe(z64, e.data.size(), 8);
      PutLe(z64, offset, 8);
    }
    const uint64_t sat = o.zip64_extra ? 0xFFFFFFFF : 0;
    PutLe(cd, 0x02014b50, 4);
    PutLe(cd, 0x031e, 2);
    PutLe(cd, 45, 2);
    PutLe(cd, e.flags, 2);
    PutLe(cd, e.method, 2);
    PutLe(cd, 0, 4);
    PutLe(cd, crc, 4);
    PutLe(cd, sat ? sat : e.data.size(), 4);
    PutLe(cd, sat ? sat : e.data.size(), 4);
    PutLe(cd, e.name.size(), 2);
    PutLe(cd, z64.size(), 2);
    PutLe(cd, 0, 2);  // comment
    PutLe(cd, 0, 2);  // disk
    PutLe(cd, 0, 2);  // internal attributes
    PutLe(cd, 0, 4);  // external attributes
    PutLe(cd, sat ? sat : offset, 4);
    cd += e.name + z64;
  }
  const uint64_t cd_offset = out.size();
  out += cd;
  if (o.zip64_end) {
    const uint64_t z64_offset = out.size();
    PutLe(out, 0x06064b50, 4);
    PutLe(out, 44, 8);
    PutLe(out, 0x031e, 2);
    PutLe(out, 45, 2);
    PutLe(out, 0, 8);  // disk numbers
    PutLe(out, items.size(), 8);
    PutLe(out, items.size(), 8);
    PutLe(out, cd.size(), 8);
    PutLe(out, cd_offset, 8);
    PutLe(out, 0x07064b50, 4);
    PutLe(out, 0, 4);
    PutLe(out, z64_offset, 8);
    PutLe(out, 1, 4);
  }
  PutLe(out, 0x06054b50, 4);
  PutLe(out, 0, 4);
  PutLe(out, items.size(), 2);
  PutLe(out, items.size(), 2);
  PutLe(out, cd.size(), 4);
  PutLe(out, cd_offset, 4);
  PutLe(out, 0, 2);
  return out;
}

// A torch.save-like archive: <prefix>/data.pkl, data/<key> storages, version, byteorder.
std::string Pth(const std::string& pickle, const std::map<std::string, std::string>& storages,
                const std::string& prefix = "archive", const ZipOptions& o = {}) {
  std::vector<ZipItem> items{{prefix + "/data.pkl", pickle}};
  items.push_back({prefix + "/byteorder", "little"});
  for (const auto& [key, data] : storages) items.push_back({prefix + "/data/" + key, data});
  items.push_back({prefix + "/version", "3\n"});
  return Zip(items, o);
}

template <typename T>
std::string RawBytes(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

std::string Floats(int64_t n, float start = 0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return RawBytes(v);
}

// Two tensors sharing storage "0" (a view at an offset), one with its own storage.
std::string SmallPth(const std::string& prefix = "archive", const ZipOptions& o = {}) {
  const std::vector<FakeTensor> t = {
      {"a.weight", "0", 10, {2, 3}}, {"a.bias", "0", 10, {4}, 6}, {"b", "1", 2, {1, 2}}};
  return Pth(StateDict(t), {{"0", Floats(10)}, {"1", Floats(2, 100)}}, prefix, o);
}

std::vector<TensorView> Parse(std::string_view bytes) {
  return ReadPthTensors(std::as_bytes(std::span(bytes.data(), bytes.size())), kMemoryName);
}

// An archive kept alive with the views into it.
struct Parsed {
  std::unique_ptr<const std::string> bytes;
  std::vector<TensorView> tensors;
  const TensorView& operator[](size_t i) const { return tensors.at(i); }
  size_t size() const { return tensors.size(); }
};
Parsed ParseOwned(std::string bytes) {
  Parsed p{std::make_unique<const std::string>(std::move(bytes)), {}};
  p.tensors = Parse(*p.bytes);
  return p;
}

std::vector<float> AsFloats(const TensorView& t) { return ToFloat32(t); }

void WriteFile(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// A FormatError naming the in-memory file and every one of `parts`.
void ExpectBad(std::string_view bytes, std::vector<std::string> parts) {
  parts.insert(parts.begin(), kMemoryName.string());
  ExpectThrowMentioning<FormatError>([&] { Parse(bytes); }, parts);
}

void ExpectSameTensor(const TensorView& a, const TensorView& b) {
  EXPECT_EQ(a.dtype, b.dtype) << a.name;
  EXPECT_EQ(a.shape, b.shape) << a.name;
  ASSERT_EQ(a.bytes.size(), b.bytes.size()) << a.name;
  EXPECT_EQ(std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()), 0) << a.name;
}

// Every tensor of `a` equals the one of the same name in `b`, and the names are the same.
void ExpectSameStore(const TensorStore& a, const TensorStore& b) {
  ASSERT_EQ(a.Names(), b.Names());
  for (const auto& name : a.Names()) ExpectSameTensor(a.Get(name), b.Get(name));
}

// ---------------------------------------------------------------------------------------------
// The shared checkpoints

TEST(PthTest, SharedRwkvCppF32IsByteIdenticalToItsSafetensors) {
  RWKV_EMBED_REQUIRE_SHARED(pth, kRwkvCppPth);
  RWKV_EMBED_REQUIRE_SHARED(st, kRwkvCppSafetensors);
  const PthFile f = PthFile::Open(pth);
  const TensorStore ref = TensorStore::Open(st);
  ASSERT_EQ(f.tensors().size(), ref.Names().size());
  EXPECT_EQ(f.tensors().front().name, "emb.weight");  // pickle (= file) order is kept
  for (const TensorView& t : f.tensors()) {
    EXPECT_EQ(t.dtype, DType::kF32) << t.name;
    EXPECT_EQ(*t.file, pth);
    ExpectSameTensor(t, ref.Get(t.name));
  }
  ExpectSameStore(OpenCheckpoint(pth), ref);
}

// The 114 names docs/design.md#embeddingrwkv lists for a 3-block EmbeddingRWKV, in the documented
// file order.
std::vector<std::string> EmbRwkvNames(int blocks) {
  std::vector<std::string> n = {"rwkv.emb.weight", "rwkv.blocks.0.ln0.weight",
                                "rwkv.blocks.0.ln0.bias"};
  for (int i = 0; i < blocks; ++i) {
    const std::string p = "rwkv.blocks." + std::to_string(i) + ".";
    for (const char* s : {"ln1.weight",
                          "ln1.bias",
                          "ln2.weight",
                          "ln2.bias",
                          "att.x_r",
                          "att.x_w",
                          "att.x_k",
                          "att.x_v",
                          "att.x_a",
                          "att.x_g",
                          "att.w0",
                          "att.w1",
                          "att.w2",
                          "att.a0",
                          "att.a1",
                          "att.a2",
                          "att.v0",
                          "att.v1",
                          "att.v2",
                          "att.g1",
                          "att.g2",
                          "att.k_k",
                          "att.k_a",
                          "att.r_k",
                          "att.receptance.weight",
                          "att.key.weight",
                          "att.value.weight",
                          "att.output.weight",
                          "att.ln_x.weight",
                          "att.ln_x.bias",
                          "ffn.x_k",
                          "ffn.key.weight",
                          "ffn.value.weight"}) {
      const std::string_view v(s);
      if (i == 0 && (v == "att.v0" || v == "att.v1" || v == "att.v2")) continue;  // no v-LoRA
      n.push_back(p + s);
    }
  }
  for (const char* s : {"rwkv.ln_out.weight", "rwkv.ln_out.bias", "rwkv.head.weight"}) {
    n.push_back(s);
  }
  for (const char* h : {"cls", "sts", "retr"}) {
    for (const char* s : {"fc1.weight", "fc2.weight", "norm.weight", "norm.bias"}) {
      n.push_back(std::string("head.") + h + "_head." + s);
    }
  }
  return n;
}

TEST(PthTest, SharedEmbeddingRwkvHas114Bf16TensorsInTheDocumentedLayout) {
  RWKV_EMBED_REQUIRE_SHARED(pth, kEmbRwkvPth);
  const PthFile f = PthFile::Open(pth);
  ASSERT_EQ(f.tensors().size(), 114u);
  std::vector<std::string> names;
  std::map<std::string, const TensorView*> by_name;
  for (const TensorView& t : f.tensors()) {
    names.push_back(t.name);
    by_name[t.name] = &t;
    EXPECT_EQ(t.dtype, DType::kBF16) << t.name;
    EXPECT_FALSE(FindNonFinite(t).has_value()) << t.name;
    // Each tensor starts its own storage, which torch aligns to 64 bytes in the file: the view
    // points into the page-aligned mapping itself, not into a copy.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.bytes.data()) % 64, 0u) << t.name;
  }
  std::vector<std::string> expected = EmbRwkvNames(3);
  EXPECT_EQ(std::set(names.begin(), names.end()), std::set(expected.begin(), expected.end()));
  EXPECT_EQ(names.front(), "rwkv.emb.weight");
  EXPECT_EQ(names.back(), "head.retr_head.norm.bias");
  const int64_t V = 65536, C = 128, H = 2, N = 64, F = 512;
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"rwkv.emb.weight", {V, C}},
      {"rwkv.head.weight", {V, C}},
      {"rwkv.blocks.0.att.r_k", {H, N}},
      {"rwkv.blocks.0.att.x_r", {1, 1, C}},
      {"rwkv.blocks.0.att.w1", {C, 32}},
      {"rwkv.blocks.2.att.w2", {32, C}},
      {"rwkv.blocks.1.att.v1", {C, 32}},
      {"rwkv.blocks.1.att.g1", {C, 64}},
      {"rwkv.blocks.2.ffn.key.weight", {F, C}},
      {"rwkv.blocks.2.ffn.value.weight", {C, F}},
      {"rwkv.ln_out.weight", {C}},
      {"head.sts_head.fc1.weight", {C, C}},
      {"head.retr_head.fc2.weight", {C, C}},
      {"head.cls_head.norm.bias", {C}}};
  for (const auto& [name, shape] : shapes) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_EQ(by_name[name]->shape, shape) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// convert

TEST(PthTest, ConvertRoundTripGivesTheSameTensorsAndMetadata) {
  RWKV_EMBED_REQUIRE_SHARED(pth, kRwkvCppPth);
  RWKV_EMBED_REQUIRE_SHARED(st, kRwkvCppSafetensors);
  RWKV_EMBED_REQUIRE_SHARED(emb, kEmbRwkvPth);
  const fs::path dir = TempDir();
  const auto run = RunCli({"convert", "--in", pth.string(), "--to", "safetensors", "--out",
                           (dir / "a.safetensors").string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("399 tensors"), std::string::npos) << run.out;
  const SafetensorsFile a = SafetensorsFile::Open(dir / "a.safetensors");
  EXPECT_EQ(a.metadata().at("format"), "pt");
  ExpectSameStore(TensorStore::Open(dir / "a.safetensors"), TensorStore::Open(st));
  EXPECT_FALSE(fs::exists(dir / "a.safetensors.partial"));

  // A folder works as --in too (its single model.pth), BF16 bytes copied as they are.
  const auto run2 = RunCli(
      {"convert", "--in", emb.parent_path().string(), "--out", (dir / "b.safetensors").string()});
  ASSERT_EQ(run2.exit_code, 0) << run2.err;
  ExpectSameStore(TensorStore::Open(dir / "b.safetensors"), OpenCheckpoint(emb));
}

TEST(PthTest, ConvertKeepsTheOldOutputOnFailureAndNeverOverwritesItsInput) {
  const fs::path dir = TempDir();
  WriteFile(dir / "ok.pth", SmallPth());
  std::string bad = SmallPth();
  bad.resize(bad.size() / 2);
  WriteFile(dir / "bad.pth", bad);
  WriteFile(dir / "out.safetensors", "previous");

  auto r = RunCli(
      {"convert", "--in", (dir / "bad.pth").string(), "--out", (dir / "out.safetensors").string()});
  EXPECT_EQ(r.exit_code, 4) << r.err;  // FormatError
  EXPECT_NE(r.err.find("bad.pth"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(dir / "out.safetensors"), "previous");
  EXPECT_FALSE(fs::exists(dir / "out.safetensors.partial"));

  r = RunCli({"convert", "--in", (dir / "ok.pth").string(), "--out", (dir / "ok.pth").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // UsageError
  EXPECT_EQ(ReadFile(dir / "ok.pth"), SmallPth());

  r = RunCli({"convert", "--in", (dir / "ok.pth").string(), "--to", "gguf", "--out",
              (dir / "x").string()});
  EXPECT_NE(r.exit_code, 0);

  r = RunCli(
      {"convert", "--in", (dir / "ok.pth").string(), "--out", (dir / "out.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const TensorStore out = TensorStore::Open(dir / "out.safetensors");
  EXPECT_EQ(out.Names(), (std::vector<std::string>{"a.bias", "a.weight", "b"}));
  EXPECT_EQ(AsFloats(out.Get("a.bias")), (std::vector<float>{6, 7, 8, 9}));
}

// ---------------------------------------------------------------------------------------------
// Loading models and finding checkpoints

// tiny-rwkv6-f32 as a torch archive whose tensors all share one storage, at increasing offsets.
std::string Rwkv6AsPth(const TensorStore& st) {
  std::vector<FakeTensor> tensors;
  std::string storage;
  int64_t total = 0;
  for (const auto& name : st.Names()) total += st.Get(name).numel();
  for (const auto& name : st.Names()) {
    const TensorView& t = st.Get(name);
    EXPECT_EQ(t.dtype, DType::kF32);
    tensors.push_back({name, "0", total, t.shape, static_cast<int64_t>(storage.size() / 4)});
    storage.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  }
  return Pth(StateDict(tensors), {{"0", storage}});
}

void ExpectSameWeights(const ModelWeights& a, const ModelWeights& b) {
  EXPECT_EQ(a.config().hidden_size, b.config().hidden_size);
  EXPECT_EQ(a.config().num_layers, b.config().num_layers);
  EXPECT_EQ(a.config().time_decay_extra_dim, b.config().time_decay_extra_dim);
  EXPECT_EQ(a.naming(), b.naming());
  const auto same = [](const kernels::WeightMatrix& x, const kernels::WeightMatrix& y) {
    ASSERT_EQ(x.rows, y.rows);
    ASSERT_EQ(x.cols, y.cols);
    ASSERT_EQ(x.dtype, y.dtype);
    EXPECT_EQ(std::memcmp(x.data, y.data, x.rows * x.cols * DTypeSize(x.dtype)), 0);
  };
  same(a.embeddings(), b.embeddings());
  same(a.head(), b.head());
  ASSERT_EQ(a.blocks().size(), b.blocks().size());
  for (size_t i = 0; i < a.blocks().size(); ++i) {
    same(a.blocks()[i].key, b.blocks()[i].key);
    same(a.blocks()[i].ffn_value, b.blocks()[i].ffn_value);
    same(a.blocks()[i].decay_w2, b.blocks()[i].decay_w2);
    EXPECT_EQ(a.blocks()[i].ln_x.bias, b.blocks()[i].ln_x.bias);
    EXPECT_EQ(a.blocks()[i].maa_g, b.blocks()[i].maa_g);
  }
}

TEST(PthTest, Rwkv6LoaderReadsModelPthPytorchModelBinAndSingleFiles) {
  RWKV_EMBED_REQUIRE_SHARED(st, kRwkv6F32);
  const auto ref = ModelWeights::Load(st.parent_path());
  const std::string pth = Rwkv6AsPth(TensorStore::Open(st));
  const fs::path dir = TempDir();
  for (const char* name : {"model.pth", "pytorch_model.bin"}) {
    const fs::path sub = dir / name;
    fs::create_directories(sub);
    WriteFile(sub / name, pth);
    fs::copy_file(st.parent_path() / "config.json", sub / "config.json");
    const auto m = ModelWeights::Load(sub);
    ExpectSameWeights(*m, *ref);
    EXPECT_NE(m->Describe().find(name), std::string::npos) << m->Describe();
    ExpectSameWeights(*ModelWeights::Load(sub / name), *ref);  // the file itself, no config
  }
}

TEST(PthTest, OpenCheckpointPicksTheFormatByContentAndTheFolderByName) {
  RWKV_EMBED_REQUIRE_SHARED(st, kRwkv6F32);
  const fs::path dir = TempDir();
  // A torch archive named .safetensors is still read as one: content decides.
  WriteFile(dir / "odd.safetensors", SmallPth());
  EXPECT_EQ(OpenCheckpoint(dir / "odd.safetensors").Names().size(), 3u);
  EXPECT_EQ(LocateCheckpoint(dir / "odd.safetensors").format, CheckpointFormat::kPth);
  EXPECT_EQ(LocateCheckpoint(st).format, CheckpointFormat::kSafetensors);

  // A folder with one arbitrarily named .pth (BlinkDL releases), then a second one.
  fs::create_directories(dir / "release");
  WriteFile(dir / "release" / "RWKV-x070-World-0.1B.pth", SmallPth());
  EXPECT_EQ(OpenCheckpoint(dir / "release").Get("b").numel(), 2);
  WriteFile(dir / "release" / "other.pth", SmallPth());
  ExpectThrowMentioning<IoError>([&] { OpenCheckpoint(dir / "release"); }, {"several .pth"});
  // model.pth wins over other .pth files, model.safetensors over model.pth.
  WriteFile(dir / "release" / "model.pth", SmallPth("model"));
  EXPECT_EQ(LocateCheckpoint(dir / "release").path, dir / "release" / "model.pth");
  fs::copy_file(st, dir / "release" / "model.safetensors");
  EXPECT_EQ(LocateCheckpoint(dir / "release").format, CheckpointFormat::kSafetensors);

  fs::create_directories(dir / "empty");
  ExpectThrowMentioning<IoError>([&] { OpenCheckpoint(dir / "empty"); },
                                 {(dir / "empty").string(), "pytorch_model.bin"});
  ExpectThrowMentioning<IoError>([&] { OpenCheckpoint(dir / "absent.pth"); }, {"absent.pth"});
  // The legacy (pre-zip) torch format is recognised and refused with advice.
  WriteFile(dir / "legacy.pth",
            std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14) + "rest");
  ExpectThrowMentioning<FormatError>([&] { OpenCheckpoint(dir / "legacy.pth"); },
                                     {"legacy.pth", "legacy torch.save format"});
}

TEST(PthTest, ShardedPytorchModelBinIndex) {
  const fs::path dir = TempDir();
  WriteFile(dir / "pytorch_model-00001-of-00002.bin",
            Pth(StateDict({{"x", "0", 2, {2}}}), {{"0", Floats(2)}}));
  WriteFile(dir / "pytorch_model-00002-of-00002.bin",
            Pth(StateDict({{"y", "0", 3, {3}}}), {{"0", Floats(3, 10)}}));
  std::ofstream(dir / "pytorch_model.bin.index.json")
      << R"({"metadata": {}, "weight_map": {"x": "pytorch_model-00001-of-00002.bin",
                                             "y": "pytorch_model-00002-of-00002.bin"}})";
  const TensorStore s = OpenCheckpoint(dir);
  EXPECT_EQ(AsFloats(s.Get("y")), (std::vector<float>{10, 11, 12}));
  EXPECT_EQ(LocateCheckpoint(dir).files.size(), 2u);
  std::ofstream(dir / "pytorch_model.bin.index.json")
      << R"({"weight_map": {"x": "pytorch_model-00002-of-00002.bin",
                            "y": "pytorch_model-00002-of-00002.bin"}})";
  ExpectThrowMentioning<FormatError>([&] { OpenCheckpoint(dir); },
                                     {"index", "'x'", "does not hold it"});
}

// ---------------------------------------------------------------------------------------------
// What the reader accepts

TEST(PthTest, ViewsAtOffsetsShareOneStorage) {
  const auto t = ParseOwned(SmallPth());
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "a.weight");
  EXPECT_EQ(t[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(AsFloats(t[0]), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(AsFloats(t[1]), (std::vector<float>{6, 7, 8, 9}));
  EXPECT_EQ(t[1].bytes.data(), t[0].bytes.data() + 24);  // same storage, no copy
  EXPECT_EQ(AsFloats(t[2]), (std::vector<float>{100, 101}));
  EXPECT_EQ(*t[2].file, kMemoryName);
}

TEST(PthTest, AnyPrefixFolderZip64ExtraFieldsAndPlainEndRecords) {
  for (const ZipOptions o :
       {ZipOptions{true, false}, ZipOptions{false, false}, ZipOptions{true, true}}) {
    const auto t = ParseOwned(SmallPth("RWKV-x070-World-0.1B-v2.8-20241210-ctx4096", o));
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(AsFloats(t[2]), (std::vector<float>{100, 101}));
  }
}

TEST(PthTest, NestedDictsFlattenAndNonTensorsAreSkipped) {
  // {"model": OrderedDict{"w": T, "n": {"v": T2}}, "epoch": 3, "tags": ["x"], "opt": [T3]},
  // with the state dict's _metadata attached by BUILD, a tied tensor, a size-1 dim's odd stride,
  // an empty tensor, and _rebuild_parameter around one tensor.
  const FakeTensor w{"", "0", 4, {1, 4}, 0, {999, 1}};
  const FakeTensor v{"", "1", 2, {2}, 0, {}, "HalfStorage"};
  const FakeTensor empty{"", "1", 2, {0, 5}, 2, {}, "HalfStorage"};
  const std::string param = pk::Global("torch._utils", "_rebuild_parameter") + "(" +
                            TensorPickle({"", "0", 4, {4}}) + "\x88" + pk::OrderedDict() + "tR";
  const std::string inner = "}(" + pk::Str("v") + TensorPickle(v) + "u";
  const std::string model = pk::OrderedDict() + "(" + pk::Str("w") + TensorPickle(w) + "q\x07" +
                            pk::Str("n") + inner + pk::Str("tied") + "h\x07" + pk::Str("e") +
                            TensorPickle(empty) + "u" + "}" + pk::Str("_metadata") + "}s" + "b";
  const std::string root = "\x80\x02}(" + pk::Str("model") + model + pk::Str("epoch") + pk::Int(3) +
                           pk::Str("tags") + "]" + pk::Str("x") + "a" + pk::Str("opt") + "(" +
                           param + "l" + pk::Str("lr") + "G" +
                           std::string("\x3f\x50\x62\x4d\xd2\xf1\xa9\xfc", 8) + "u.";
  const std::string half = RawBytes(std::vector<uint16_t>{0x3c00, 0x4000});  // 1, 2
  const auto t = ParseOwned(Pth(root, {{"0", Floats(4)}, {"1", half}}));
  std::vector<std::string> names;
  for (const auto& x : t.tensors) names.push_back(x.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"model.w", "model.n.v", "model.tied", "model.e", "opt.0"}));
  EXPECT_EQ(t[1].dtype, DType::kF16);
  EXPECT_EQ(AsFloats(t[1]), (std::vector<float>{1, 2}));
  EXPECT_EQ(t[2].bytes.data(), t[0].bytes.data());
  EXPECT_EQ(t[3].numel(), 0);
  EXPECT_EQ(AsFloats(t[4]), (std::vector<float>{0, 1, 2, 3}));
}

TEST(PthTest, Protocol4Opcodes) {
  // FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINUNICODE8, EMPTY_DICT/SETITEM, LONG1.
  auto su = [](std::string_view s) {
    return "\x8c" + std::string(1, static_cast<char>(s.size())) + std::string(s) + "\x94";
  };
  const std::string pid = "(" + su("storage") + su("torch") + su("BFloat16Storage") + "\x93\x94" +
                          su("0") + su("cpu") + "K\x03t\x94Q\x94";
  const std::string tensor = su("torch._utils") + su("_rebuild_tensor_v2") + "\x93\x94(" + pid +
                             "\x8a\x01\x01" + "K\x02\x85\x94K\x01\x85\x94\x89" + su("collections") +
                             su("OrderedDict") + "\x93\x94)R\x94t\x94R\x94";
  std::string body = "}\x94\x8d";
  PutLe(body, 3, 8);
  body += "key\x94" + tensor + "s.";
  std::string program = "\x80\x04\x95";
  PutLe(program, body.size(), 8);
  program += body;
  const std::string bf16 = RawBytes(std::vector<uint16_t>{0x3f80, 0x4000, 0x4040});  // 1, 2, 3
  const auto t = ParseOwned(Pth(program, {{"0", bf16}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].name, "key");
  EXPECT_EQ(t[0].dtype, DType::kBF16);
  EXPECT_EQ(AsFloats(t[0]), (std::vector<float>{2, 3}));  // offset 1 via LONG1
}

TEST(PthTest, FuzzSeamParsesGoodInputAndRejectsBadInput) {
  const std::string good = SmallPth();
  EXPECT_TRUE(
      ParsePthForFuzzing(std::span(reinterpret_cast<const uint8_t*>(good.data()), good.size())));
  const std::string bad = good.substr(0, good.size() - 1);
  EXPECT_FALSE(
      ParsePthForFuzzing(std::span(reinterpret_cast<const uint8_t*>(bad.data()), bad.size())));
  EXPECT_FALSE(ParsePthForFuzzing({}));
}

// ---------------------------------------------------------------------------------------------
// Bad input: a FormatError naming the file and what is wrong, never a crash

TEST(PthBadInputTest, TruncatedAtEveryByte) {
  const std::string good = SmallPth();
  ASSERT_EQ(Parse(good).size(), 3u);
  for (size_t n = 0; n < good.size(); ++n) {
    SCOPED_TRACE("cut at " + std::to_string(n));
    ExpectBad(std::string_view(good).substr(0, n), {});
  }
}

TEST(PthBadInputTest, TruncatedSharedCheckpoint) {
  RWKV_EMBED_REQUIRE_SHARED(pth, kRwkvCppPth);
  const std::string good = ReadFile(pth);
  for (size_t i = 0; i < 200; ++i) {
    const size_t n = good.size() * i / 200 + i;  // spread over the file, odd offsets included
    SCOPED_TRACE("cut at " + std::to_string(n));
    ExpectBad(std::string_view(good).substr(0, n), {});
  }
  for (size_t n = good.size() - 120; n < good.size(); ++n) {
    ExpectBad(std::string_view(good).substr(0, n), {});
  }
}

TEST(PthBadInputTest, TruncatedPickleAtEveryByte) {
  const std::string pickle = StateDict({{"w", "0", 2, {2}}});
  for (size_t n = 0; n < pickle.size(); ++n) {
    SCOPED_TRACE("pickle cut at " + std::to_string(n));
    ExpectBad(Pth(pickle.substr(0, n), {{"0", Floats(2)}}), {"data.pkl"});
  }
}

// Every single-byte corruption either still parses (a byte nobody checks: a timestamp, a
// storage's contents) or is a FormatError naming the file.
TEST(PthBadInputTest, EveryFlippedByteIsParsedOrRejected) {
  const std::string good = SmallPth();
  size_t rejected = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0xff);
    try {
      Parse(bad);
    } catch (const FormatError& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find(kMemoryName.string()), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "byte " << i << ": " << e.what();
    }
  }
  EXPECT_GT(rejected, good.size() / 4);
}

size_t CentralDirectory(const std::string& zip) { return zip.find("PK\x01\x02"); }

TEST(PthBadInputTest, CorruptCentralDirectoryIsNamed) {
  const std::string good = SmallPth();
  const size_t cd = CentralDirectory(good);
  std::string bad = good;
  bad[cd] = 'X';  // signature
  ExpectBad(bad, {"central directory header at byte " + std::to_string(cd)});
  bad = good;
  bad[cd + 46] = 'X';  // the first entry's name: archive/data.pkl -> Xrchive/data.pkl
  ExpectBad(bad, {"names another entry"});
  bad = good;
  bad[cd + 42] = static_cast<char>(bad[cd + 42] + 1);  // local header offset
  ExpectBad(bad, {"no local header at byte 1"});
  bad = good;
  bad[cd + 24] = static_cast<char>(0x7f);  // uncompressed size of data.pkl
  bad[cd + 20] = static_cast<char>(0x7f);
  ExpectBad(bad, {"archive/data.pkl"});
  bad = good;
  const size_t end = good.rfind("PK\x05\x06");
  const size_t locator = good.rfind("PK\x06\x07");
  bad[locator + 8] = static_cast<char>(0x55);  // zip64 end record offset
  ExpectBad(bad, {"zip64 end record offset"});
  // Without the zip64 records the classic end record alone describes the same archive.
  EXPECT_EQ(Parse(good.substr(0, locator - 56) + good.substr(end)).size(), 3u);
  bad = good;
  bad[end + 10] = static_cast<char>(0x7f);           // entry count in the classic record
  bad[locator - 56 + 32] = static_cast<char>(0x7f);  // and in the zip64 record
  ExpectBad(bad, {"cannot hold"});
}

TEST(PthBadInputTest, CompressedOrEncryptedEntries) {
  const std::string pickle = StateDict({{"w", "0", 2, {2}}});
  ExpectBad(Zip({{"archive/data.pkl", pickle, 8}, {"archive/data/0", Floats(2)}}),
            {"entry 'archive/data.pkl' is compressed (method 8)"});
  ExpectBad(Zip({{"archive/data.pkl", pickle}, {"archive/data/0", Floats(2), 8}}),
            {"entry 'archive/data/0' is compressed"});
  ExpectBad(Zip({{"archive/data.pkl", pickle}, {"archive/data/0", Floats(2), 0, 1}}),
            {"entry 'archive/data/0' is encrypted"});
}

TEST(PthBadInputTest, UnknownOpcodesAreNamedWithTheirOffset) {
  ExpectBad(Pth("\x80\x02i__main__\nX\n.", {}), {"opcode 0x69 ('i')", "at byte 2"});
  ExpectBad(Pth("\x80\x02N\x81.", {}), {"opcode 0x81", "at byte 3"});
  ExpectBad(Pth("\x80\x02N\xff.", {}), {"opcode 0xff", "at byte 3"});
  ExpectBad(Pth("\x80\x02S'x'\n.", {}), {"opcode 0x53 ('S')", "at byte 2"});
  ExpectBad(Pth("\x80\x09}.", {}), {"protocol 9", "at byte 0"});
}

TEST(PthBadInputTest, ForbiddenGlobalsAreNeverCalled) {
  // os.system("touch PWNED") via GLOBAL + REDUCE: refused at the GLOBAL, before any call.
  ExpectBad(Pth("\x80\x02" + pk::Global("os", "system") + pk::Str("touch PWNED") + "\x85R.", {}),
            {"forbidden global 'os.system'", "at byte 2", "never executed"});
  // builtins.eval via STACK_GLOBAL (protocol 4).
  ExpectBad(Pth("\x80\x04\x8c\x08"
                "builtins\x8c\x04"
                "eval\x93.",
                {}),
            {"forbidden global 'builtins.eval'", "at byte 18"});
  ExpectBad(Pth("\x80\x02" + pk::Global("torch", "load") + ".", {}), {"'torch.load'"});
  ExpectBad(Pth("\x80\x02" + pk::Global("torch._utils", "_rebuild_qtensor") + ".", {}),
            {"'torch._utils._rebuild_qtensor'"});
  ExpectBad(Pth("\x80\x02" + pk::Global("torch.nn", "Module") + ".", {}), {"'torch.nn.Module'"});
  ExpectBad(Pth("\x80\x02" + pk::Global("posix\x01", "system") + ".", {}), {"posix\\x01"});
  // Accepted globals called with anything but the arguments a state dict uses.
  ExpectBad(
      Pth("\x80\x02" + pk::Global("collections", "OrderedDict") + pk::Str("x") + "\x85R.", {}),
      {"call of collections.OrderedDict with unsupported arguments"});
  ExpectBad(Pth("\x80\x02" + pk::Global("torch", "FloatStorage") + ")R.", {}),
            {"call of torch.FloatStorage"});
  ExpectBad(
      Pth("\x80\x02" + pk::Global("torch._utils", "_rebuild_tensor_v2") + pk::Str("x") + "\x85R.",
          {}),
      {"_rebuild_tensor_v2 with unsupported arguments"});
  ExpectBad(Pth("\x80\x02" + pk::Str("not a storage") + "Q.", {}), {"persistent id"});
}

TEST(PthBadInputTest, StorageOutOfRangeNamesTheTensor) {
  const auto one = [](const FakeTensor& t, const std::string& data) {
    return Pth(StateDict({t}), {{"0", data}});
  };
  ExpectBad(one({"w.past", "0", 6, {5}, 2}, Floats(6)),
            {"tensor 'w.past'", "storage offset 2", "runs past its storage '0' of 6 elements"});
  ExpectBad(one({"w.neg", "0", 6, {2}, -1}, Floats(6)), {"tensor 'w.neg'", "storage offset -1"});
  ExpectBad(one({"w.short", "0", 10, {2}}, Floats(6)),
            {"tensor 'w.short'", "holds 24 bytes but is declared as 10 x F32"});
  ExpectBad(Pth(StateDict({{"w.lost", "7", 2, {2}}}), {{"0", Floats(2)}}),
            {"tensor 'w.lost'", "'archive/data/7' is missing"});
  ExpectBad(one({"w.huge", "0", 6, {int64_t{1} << 40, int64_t{1} << 40}, 0, {1, 1}}, Floats(6)),
            {"tensor 'w.huge'", "invalid shape"});
  ExpectBad(one({"w.negdim", "0", 6, {-2}}, Floats(6)), {"tensor 'w.negdim'", "invalid shape"});
  ExpectBad(one({"w.numel", "0", int64_t{1} << 62, {2}}, Floats(6)),
            {"tensor 'w.numel'", "declared as"});
}

TEST(PthBadInputTest, NonContiguousAndUnsupportedDtypesNameTheTensor) {
  ExpectBad(Pth(StateDict({{"w.t", "0", 6, {2, 3}, 0, {1, 2}}}), {{"0", Floats(6)}}),
            {"tensor 'w.t'", "not contiguous", "stride [1, 2]"});
  ExpectBad(
      Pth(StateDict({{"w.c", "0", 2, {2}, 0, {}, "ComplexFloatStorage"}}), {{"0", Floats(4)}}),
      {"tensor 'w.c'", "unsupported storage type torch.ComplexFloatStorage"});
}

TEST(PthBadInputTest, NestingCyclesAndSizesAreBounded) {
  std::string deep = "\x80\x02}";
  for (int i = 0; i < 100; ++i) deep += pk::Str("a") + "}";
  deep += std::string(100, 's') + ".";
  ExpectBad(Pth(deep, {}), {"nested deeper than 32", "'a.a.a."});
  ExpectBad(Pth("\x80\x02}q"s + '\0' + pk::Str("a") + "h" + '\0' + "s.", {}), {"cyclic"});
  // A DAG of 30 levels that each name the level below twice: 2^30 paths.
  std::string dag = "\x80\x02}(" + pk::Str("w") + TensorPickle({"", "0", 2, {2}}) + "uq" + '\0';
  for (int i = 0; i < 30; ++i) {
    const std::string prev = "h" + std::string(1, static_cast<char>(i));
    dag += "}(" + pk::Str("a") + prev + pk::Str("b") + prev + "uq" +
           std::string(1, static_cast<char>(i + 1));
  }
  ExpectBad(Pth(dag + ".", {{"0", Floats(2)}}), {"shared so often", "would not end"});
  ExpectBad(Pth("\x80\x02" + std::string(PickleProgram::kMaxStack + 1, '(') + ".", {}),
            {"too many MARKs"});
  ExpectBad(Pth("\x80\x02N" + std::string(PickleProgram::kMaxStack, '2') + ".", {}),
            {"stack deeper than the limit"});
  ExpectBad(Pth("\x80\x02Nr\xff\xff\xff\xff.", {}), {"memo index 4294967295 beyond the limit"});
  std::string many = "\x80\x02";
  for (size_t i = 0; i <= PickleProgram::kMaxValues; ++i) many += "N0";
  ExpectBad(Pth(many + "}.", {}), {"more than 1048576 values"});
  ExpectBad(Pth("\x80\x02X\xff\xff\xff\x7f"
                "abc.",
                {}),
            {"ends inside an opcode's argument"});
  ExpectBad(Pth("\x80\x02" + std::string("c") + std::string(300, 'a') + "\nb\n.", {}),
            {"GLOBAL without a newline-terminated name"});
}

TEST(PthBadInputTest, OtherMalformedArchives) {
  const std::string w = TensorPickle({"", "0", 2, {2}});
  ExpectBad("", {"not a zip archive"});
  ExpectBad("{\"a\": 1}", {"not a zip archive"});
  ExpectBad(std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14) + "...",
            {"legacy torch.save format"});
  ExpectBad(Zip({{"archive/version", "3\n"}}), {"no '<folder>/data.pkl' entry"});
  ExpectBad(Zip({{"a/data.pkl", "\x80\x02}."}, {"b/data.pkl", "\x80\x02}."}}), {"two pickles"});
  ExpectBad(Zip({{"archive/data.pkl", "\x80\x02}."}, {"archive/data.pkl", "\x80\x02}."}}),
            {"appears twice"});
  ExpectBad(Zip({{"archive/data.pkl", "\x80\x02}."}, {"archive/byteorder", "big"}}),
            {"big-endian"});
  ExpectBad(Pth("\x80\x02]" + w + "a.", {{"0", Floats(2)}}), {"not hold a dict"});
  ExpectBad(Pth("\x80\x02}(" + pk::Str("\xff\xfe") + w + "u.", {{"0", Floats(2)}}),
            {"not valid UTF-8", "at byte 4"});
  ExpectBad(Pth("\x80\x02}(" + pk::Str("a.b") + w + pk::Str("a") + "}" + pk::Str("b") + w + "su.",
                {{"0", Floats(2)}}),
            {"'a.b' appears twice"});
  ExpectBad(Pth("\x80\x02}" + pk::Str("a") + "a.", {}), {"APPEND on a value that is not a list"});
  EXPECT_TRUE(Parse(Pth("\x80\x02}}" + pk::Str("a") + "b.", {})).empty());  // BUILD on a dict
  ExpectBad(Pth("\x80\x02" + pk::Int(1) + "}b.", {}), {"BUILD on a value that is not a dict"});
  ExpectBad(Pth("\x80\x02" + std::string("0."), {}), {"stack underflow", "at byte 2"});
  ExpectBad(Pth("\x80\x02(" + std::string("0."), {}), {"stack underflow", "at byte 3"});
  std::string crc = SmallPth();
  const size_t key = crc.find("a.weight");
  crc[key] = 'b';  // inside data.pkl, whose CRC-32 is checked
  ExpectBad(crc, {"archive/data.pkl", "CRC-32"});
}

}  // namespace
}  // namespace rwkv_embed
