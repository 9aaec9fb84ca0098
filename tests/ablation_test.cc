// Ablation switches (BlockOverride) and their text form (model/ablation.h).
//
// Each switch is checked against the weight edit that means the same thing, on the golden tiny
// models of both architectures: the override on the intact checkpoint and the edited copy of the
// checkpoint must give the same hidden states at every layer. The comparison is bitwise: in each
// case the edited model does the same arithmetic with a zero in it (a GEMM against zero weights
// gives ±0, x + ±0 = x; a zero bonus through the same kernel), so no rounding can differ.
#include "model/ablation.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/load_model.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

namespace fs = std::filesystem;

constexpr const char* kRwkv6 = "models/tiny-rwkv6-f32/model.safetensors";
constexpr const char* kRwkv7 = "models/tiny-rwkv7-f32/model.safetensors";

// Copies config.json and model.safetensors of `model_dir` to `dest` with every element of the
// named F32 tensors set to 0 (located through the safetensors header).
fs::path ZeroedCopy(const fs::path& model_dir, const fs::path& dest,
                    const std::vector<std::string>& tensors) {
  fs::create_directories(dest);
  for (const char* f : {"config.json", "model.safetensors"}) {
    fs::copy_file(model_dir / f, dest / f);
    fs::permissions(dest / f, fs::perms::owner_write, fs::perm_options::add);
  }
  std::fstream f(dest / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  const auto j = nlohmann::json::parse(header);
  for (const std::string& name : tensors) {
    EXPECT_TRUE(j.contains(name)) << name;
    if (!j.contains(name)) continue;
    EXPECT_EQ(j.at(name).at("dtype"), "F32") << name;
    const auto offsets = j.at(name).at("data_offsets");
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    const std::string zeros(end - begin, '\0');  // +0.0f is all zero bytes
    f.seekp(static_cast<std::streamoff>(8 + header_len + begin));
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  EXPECT_TRUE(f.good());
  return dest;
}

// Every layer's hidden states of a packed batch of three sequences of different lengths.
std::map<int, std::vector<float>> AllLayers(const SequenceModel& m,
                                            const std::vector<BlockOverride>& overrides = {}) {
  TokenBatch batch;
  batch.Add(std::vector<int32_t>{95, 319, 225, 47, 0, 999, 33, 4000, 12});
  batch.Add(std::vector<int32_t>{1, 65535});
  batch.Add(std::vector<int32_t>{300, 301, 302, 303, 304});
  ForwardOptions opts;
  for (int l = 0; l < m.num_layer_taps(); ++l) opts.layers.push_back(l);
  opts.overrides = overrides;
  std::map<int, std::vector<float>> out;
  m.Forward(batch, opts, [&](int layer, const Matrix& h) {
    out[layer].assign(h.Flat().begin(), h.Flat().end());
  });
  return out;
}

struct Architecture {
  const char* model;
  std::string (*prefix)(int block0);  // tensor-name prefix of a 0-based block
  // The tensor each switch's weight edit zeroes, inside the block.
  std::map<AblationSwitch, std::string> edit;
};

Architecture Rwkv6() {
  return {kRwkv6,
          [](int b) { return "rwkv.blocks." + std::to_string(b) + "."; },
          {{AblationSwitch::kSkipTimeMix, "attention.output.weight"},
           {AblationSwitch::kSkipChannelMix, "feed_forward.value.weight"},
           {AblationSwitch::kFreezeDecay, "attention.time_decay_w2"},
           {AblationSwitch::kZeroBonus, "attention.time_faaaa"}}};
}

Architecture Rwkv7() {
  return {kRwkv7,
          [](int b) { return "model.layers." + std::to_string(b) + "."; },
          {{AblationSwitch::kSkipTimeMix, "attn.o_proj.weight"},
           {AblationSwitch::kSkipChannelMix, "ffn.value.weight"},
           {AblationSwitch::kFreezeDecay, "attn.w_lora.lora.2.weight"},  // w2, stored [C, D]
           {AblationSwitch::kZeroBonus, "attn.r_k"}}};
}

void ExpectSwitchesEqualWeightEdits(const Architecture& arch) {
  const fs::path file = testing::SharedFile(arch.model);
  if (file.empty()) GTEST_SKIP() << "shared file absent: " << arch.model;
  const auto intact = LoadModel(file.parent_path());
  const auto reference = AllLayers(*intact);
  const int64_t L = intact->num_blocks();
  ASSERT_GE(L, 2);
  int n = 0;
  for (const auto& [what, tensor] : arch.edit) {
    for (int block = 1; block <= L; ++block) {
      AblationSpec spec;
      spec.what = what;
      spec.blocks = {block};
      SCOPED_TRACE(spec.Name() + " vs zeroed " + arch.prefix(block - 1) + tensor);
      const std::vector<AblationSpec> specs = {spec};
      const auto switched = AllLayers(*intact, AblationOverrides(specs, L));
      const fs::path dir = ZeroedCopy(file.parent_path(), testing::TempDir() / std::to_string(n++),
                                      {arch.prefix(block - 1) + tensor});
      const auto edited = AllLayers(*LoadModel(dir));
      ASSERT_EQ(switched.size(), static_cast<size_t>(L + 2));
      for (const auto& [layer, h] : switched) {
        EXPECT_EQ(h, edited.at(layer)) << "layer " << layer;
        // Layers before the block are untouched; the block's own output is changed.
        if (layer < block) {
          EXPECT_EQ(h, reference.at(layer)) << "layer " << layer;
        }
        if (layer == block) {
          EXPECT_NE(h, reference.at(layer)) << "the switch changed nothing at layer " << layer;
        }
      }
    }
  }
}

TEST(AblationSwitchTest, Rwkv6SwitchesEqualWeightEdits) { ExpectSwitchesEqualWeightEdits(Rwkv6()); }

TEST(AblationSwitchTest, Rwkv7SwitchesEqualWeightEdits) { ExpectSwitchesEqualWeightEdits(Rwkv7()); }

// A decay scale of 1 is the intact model, bit for bit; freezing every block's decay and zeroing
// every bonus at once equals zeroing all those tensors.
TEST(AblationSwitchTest, NoOpScaleAndCombinedSwitches) {
  for (const Architecture& arch : {Rwkv6(), Rwkv7()}) {
    const fs::path file = testing::SharedFile(arch.model);
    if (file.empty()) GTEST_SKIP() << "shared file absent: " << arch.model;
    const auto m = LoadModel(file.parent_path());
    const std::vector<AblationSpec> one = {ParseAblationSpec("decay-scale=1:all")};
    EXPECT_EQ(AllLayers(*m, AblationOverrides(one, m->num_blocks())), AllLayers(*m));
    const std::vector<AblationSpec> both = {ParseAblationSpec("freeze-decay:all"),
                                            ParseAblationSpec("zero-bonus:1-2")};
    std::vector<std::string> tensors;
    for (int b = 0; b < m->num_blocks(); ++b) {
      tensors.push_back(arch.prefix(b) + arch.edit.at(AblationSwitch::kFreezeDecay));
      tensors.push_back(arch.prefix(b) + arch.edit.at(AblationSwitch::kZeroBonus));
    }
    const fs::path dir =
        ZeroedCopy(file.parent_path(), testing::TempDir() / m->Architecture(), tensors);
    EXPECT_EQ(AllLayers(*m, AblationOverrides(both, m->num_blocks())), AllLayers(*LoadModel(dir)))
        << m->Architecture();
  }
}

TEST(AblationSpecTest, ParsesSwitchesBlocksAndCanonicalNames) {
  struct Case {
    const char* text;
    AblationSwitch what;
    float scale;
    std::vector<int> blocks;
    const char* name;
  };
  const std::vector<Case> cases = {
      {"skip-tmix:3", AblationSwitch::kSkipTimeMix, 1.0f, {3}, "skip-tmix:3"},
      {"tmix:3", AblationSwitch::kSkipTimeMix, 1.0f, {3}, "skip-tmix:3"},
      {"skip-cmix:1-4", AblationSwitch::kSkipChannelMix, 1.0f, {1, 2, 3, 4}, "skip-cmix:1-4"},
      {"cmix:4,1..2", AblationSwitch::kSkipChannelMix, 1.0f, {1, 2, 4}, "skip-cmix:1-2,4"},
      {"freeze-decay:all", AblationSwitch::kFreezeDecay, 1.0f, {}, "freeze-decay:all"},
      {"decay-scale=2.0:5-8", AblationSwitch::kDecayScale, 2.0f, {5, 6, 7, 8}, "decay-scale=2:5-8"},
      {"decay-scale=0.25:1", AblationSwitch::kDecayScale, 0.25f, {1}, "decay-scale=0.25:1"},
      {"zero-bonus:12", AblationSwitch::kZeroBonus, 1.0f, {12}, "zero-bonus:12"},
      {"zero-bonus:1,3,5-7,9",
       AblationSwitch::kZeroBonus,
       1.0f,
       {1, 3, 5, 6, 7, 9},
       "zero-bonus:1,3,5-7,9"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const AblationSpec s = ParseAblationSpec(c.text);
    EXPECT_EQ(s.what, c.what);
    EXPECT_EQ(s.scale, c.scale);
    EXPECT_EQ(s.blocks, c.blocks);
    EXPECT_EQ(s.Name(), c.name);
    EXPECT_EQ(ParseAblationSpec(s.Name()).Name(), s.Name());  // the name parses back
  }
  const std::vector<AblationSpec> grid = ParseAblationGrid(
      "tmix,cmix,freeze-decay,zero-bonus,"
      "decay-scale=2");
  ASSERT_EQ(grid.size(), 5u);
  EXPECT_EQ(grid[0].SwitchName(), "skip-tmix");
  EXPECT_EQ(grid[4].SwitchName(), "decay-scale=2");
  EXPECT_TRUE(grid[4].blocks.empty());
  EXPECT_EQ(AblationsName(std::vector<AblationSpec>{ParseAblationSpec("tmix:1"),
                                                    ParseAblationSpec("zero-bonus:all")}),
            "skip-tmix:1 + zero-bonus:all");
}

// Every bad input is a UsageError that quotes the bad part.
TEST(AblationSpecTest, BadSpecsNameTheBadPart) {
  const std::vector<std::pair<const char*, const char*>> bad = {
      {"skip-tmix", "names no blocks"},
      {"skip-attn:3", "'skip-attn'"},
      {"skip-tmix:x", "'x'"},
      {"skip-tmix:0", "1-based"},
      {"skip-tmix:4-2", "'4-2'"},
      {"skip-tmix:1,1", "twice"},
      {"skip-tmix:1,", "''"},
      {"skip-tmix:", "empty block list"},
      {"skip-tmix:-3", "''"},
      {"skip-tmix:99999999999", "'99999999999'"},
      {"decay-scale:3", "needs a value"},
      {"decay-scale=:3", "''"},
      {"decay-scale=-1:3", "'-1'"},
      {"decay-scale=nan:3", "'nan'"},
      {"decay-scale=inf:3", "'inf'"},
      {"decay-scale=2x:3", "'2x'"},
      {"zero-bonus=1:3", "takes no value"},
  };
  for (const auto& [text, part] : bad) {
    try {
      ParseAblationSpec(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << text << ": " << e.what() << " (expected it to mention " << part << ")";
    }
  }
  EXPECT_THROW(ParseAblationGrid("tmix,,cmix"), UsageError);
  EXPECT_THROW(ParseAblationGrid("tmix,skip-tmix"), UsageError);
  EXPECT_THROW(ParseAblationGrid("tmix:3"), UsageError);
  // Blocks beyond the model are caught when the spec meets the model.
  const std::vector<AblationSpec> beyond = {ParseAblationSpec("skip-cmix:2-3")};
  try {
    AblationOverrides(beyond, 2);
    ADD_FAILURE() << "block 3 of a 2-block model was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("block 3 is beyond the model's 2 blocks"),
              std::string::npos)
        << e.what();
  }
}

TEST(AblationSpecTest, OverridesCombineSpecs) {
  const std::vector<AblationSpec> specs = {
      ParseAblationSpec("skip-tmix:1"),       ParseAblationSpec("decay-scale=2:all"),
      ParseAblationSpec("decay-scale=1.5:2"), ParseAblationSpec("freeze-decay:3"),
      ParseAblationSpec("zero-bonus:1,3"),    ParseAblationSpec("cmix:2")};
  const std::vector<BlockOverride> o = AblationOverrides(specs, 3);
  ASSERT_EQ(o.size(), 3u);
  EXPECT_TRUE(o[0].skip_time_mix);
  EXPECT_FALSE(o[1].skip_time_mix);
  EXPECT_TRUE(o[1].skip_channel_mix);
  EXPECT_FALSE(o[0].skip_channel_mix);
  EXPECT_EQ(o[0].decay_rate_scale, 2.0f);
  EXPECT_EQ(o[1].decay_rate_scale, 3.0f);
  EXPECT_TRUE(o[2].freeze_decay);
  EXPECT_FALSE(o[1].freeze_decay);
  EXPECT_TRUE(o[0].zero_bonus && o[2].zero_bonus);
  EXPECT_FALSE(o[1].zero_bonus);
  EXPECT_TRUE(AblationOverrides({}, 3).empty());
}

}  // namespace
}  // namespace rwkv_embed
