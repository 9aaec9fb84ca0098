// FLOPs per token of RWKV-7 (x070), counted by hand for the shared fla model and the Goose 1.5B
// shape (docs/design.md#rwkv-7-block: C 2048, L 24, F 4C, ranks 96/96/64/256).
#include <gtest/gtest.h>

#include "bench/flops.h"
#include "core/error.h"
#include "model/rwkv7/rwkv7.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

Rwkv7Config Goose1b5() {
  Rwkv7Config c;
  c.vocab_size = 65536;
  c.hidden_size = 2048;
  c.num_layers = 24;
  c.num_heads = 32;
  c.head_size = 64;
  c.intermediate_size = 8192;
  c.decay_lora = 96;
  c.a_lora = 96;
  c.v_lora = 64;
  c.gate_lora = 256;
  return c;
}

TEST(Rwkv7FlopsTest, Goose1b5ByHand) {
  const Rwkv7Config c = Goose1b5();
  // Per block: r, k, v, output 4 * 2048^2 = 16777216; LoRA w, a, g 2 * 2048 * (96 + 96 + 256)
  // = 1835008; ffn 2 * 8192 * 2048 = 33554432 -> 52166656. Blocks 1..23 add the value LoRA
  // 2 * 2048 * 64 = 262144.
  EXPECT_EQ(bench::ProjectionParams(c), 24 * 52166656 + 23 * 262144);
  // 9 FLOPs per state element, 32 heads of 64 x 64.
  EXPECT_EQ(bench::WkvFlopsPerTokenPerBlock(c), 9 * 32 * 64 * 64);
  EXPECT_DOUBLE_EQ(bench::ForwardFlops(c, 1),
                   2.0 * (24 * 52166656 + 23 * 262144) + 24.0 * 9 * 32 * 64 * 64);
  EXPECT_DOUBLE_EQ(bench::ForwardFlops(c, 10), 10 * bench::ForwardFlops(c, 1));
  Rwkv7Config missing = c;
  missing.gate_lora = 0;
  EXPECT_THROW(bench::ForwardFlops(missing, 1), UsageError);
}

TEST(Rwkv7FlopsTest, LoadedModelReportsItsShape) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "models/tiny-rwkv7-f32/model.safetensors");
  const Rwkv7Model m(Rwkv7Weights::Load(dir.parent_path()));
  // C 64, F 224, L 2, ranks 16/24/8/40, heads of 32: 2 * (4 * 64^2 + 2 * 64 * 80 + 2 * 224 * 64)
  // + 1 * 2 * 64 * 8 = 111616; WKV 9 * 64 * 32 = 18432 per block.
  EXPECT_EQ(m.ProjectionParams(), 111616);
  EXPECT_DOUBLE_EQ(m.FlopsPerToken(), 2.0 * 111616 + 2 * 18432);
}

}  // namespace
}  // namespace rwkv_embed
