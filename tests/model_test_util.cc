#include "model_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace rwkv_embed::testing {

Golden LoadGolden(std::unique_ptr<SequenceModel> model, const std::filesystem::path& dir) {
  Golden g{std::move(model), TensorStore::Open(dir / "golden.safetensors"), {}};
  std::ifstream in(dir / "golden.json");
  const auto j = nlohmann::json::parse(in);
  for (const auto& s : j["sequences"]) g.ids.push_back(s["ids"].get<std::vector<int32_t>>());
  return g;
}

std::vector<TensorToWrite> CopyTensors(const TensorStore& src,
                                       const std::function<bool(TensorToWrite&)>& edit) {
  std::vector<TensorToWrite> out;
  for (const auto& name : src.Names()) {
    const TensorView& t = src.Get(name);
    TensorToWrite w{name, t.dtype, t.shape, {t.bytes.begin(), t.bytes.end()}};
    if (edit(w)) out.push_back(std::move(w));
  }
  return out;
}

std::vector<int> AllLayers(const SequenceModel& m) {
  std::vector<int> layers;
  for (int l = 0; l < m.num_layer_taps(); ++l) layers.push_back(l);
  return layers;
}

std::vector<float> FinalLayer(const SequenceModel& m, std::span<const int32_t> ids) {
  TokenBatch batch;
  batch.Add(ids);
  ForwardOptions opts;
  opts.layers = {m.num_layer_taps() - 1};
  std::vector<float> out;
  m.Forward(batch, opts,
            [&](int, const Matrix& h) { out.assign(h.Flat().begin(), h.Flat().end()); });
  return out;
}

namespace {

// Every layer tap, the last logits and the states, with matmuls at `precision`.
ForwardOptions EveryTapLogitsAndStates(const SequenceModel& m, kernels::MatMulPrecision precision) {
  ForwardOptions opts;
  opts.layers = AllLayers(m);
  opts.logits = true;
  opts.return_states = true;
  opts.precision = precision;
  return opts;
}

}  // namespace

double MeanPooledCosine(const Matrix& h, std::span<const float> ref_mean) {
  const int64_t T = h.rows(), C = h.cols();
  std::vector<double> mean(C, 0.0);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < C; ++c) mean[c] += h.Row(t)[c] / static_cast<double>(T);
  }
  double dot = 0, na = 0, nb = 0;
  for (int64_t c = 0; c < C; ++c) {
    const double b = ref_mean[c];
    dot += mean[c] * b;
    na += mean[c] * mean[c];
    nb += b * b;
  }
  return dot / std::sqrt(na * nb);
}

void ExpectPackedBatchIsBitIdentical(const SequenceModel& m,
                                     const std::vector<std::vector<int32_t>>& ids,
                                     kernels::MatMulPrecision precision) {
  const ForwardOptions opts = EveryTapLogitsAndStates(m, precision);
  TokenBatch all;
  for (const auto& seq : ids) all.Add(seq);
  std::vector<Matrix> packed(m.num_layer_taps());
  auto packed_result = m.Forward(all, opts, [&](int l, const Matrix& h) { packed[l] = h; });
  for (size_t s = 0; s < ids.size(); ++s) {
    TokenBatch one;
    one.Add(ids[s]);
    auto single = m.Forward(one, opts, [&](int l, const Matrix& h) {
      int64_t differing = 0;
      for (int64_t t = 0; t < h.rows(); ++t) {
        differing += std::memcmp(h.Row(t), packed[l].Row(all.offsets[s] + t), h.cols() * 4) != 0;
      }
      EXPECT_EQ(differing, 0) << "seq " << s << " layer " << l;
    });
    ASSERT_EQ(0, std::memcmp(single.logits.data(), packed_result.logits.Row(s),
                             single.logits.cols() * sizeof(float)));
    for (size_t b = 0; b < single.states[0].size(); ++b) {
      EXPECT_EQ(single.states[0][b].wkv, packed_result.states[s][b].wkv);
      EXPECT_EQ(single.states[0][b].time_shift, packed_result.states[s][b].time_shift);
      EXPECT_EQ(single.states[0][b].channel_shift, packed_result.states[s][b].channel_shift);
    }
  }
}

void ExpectChunkedEvaluationEqualsOnePass(const SequenceModel& m, std::span<const int32_t> ids,
                                          std::span<const size_t> chunks,
                                          kernels::MatMulPrecision precision) {
  const ForwardOptions opts = EveryTapLogitsAndStates(m, precision);
  TokenBatch whole;
  whole.Add(ids);
  std::vector<Matrix> full(m.num_layer_taps());
  auto full_result = m.Forward(whole, opts, [&](int l, const Matrix& h) { full[l] = h; });

  for (size_t chunk : chunks) {
    SequenceState state = m.ZeroState();
    ForwardResult last;
    for (size_t start = 0; start < ids.size(); start += chunk) {
      const size_t len = std::min(chunk, ids.size() - start);
      TokenBatch part;
      part.Add(ids.subspan(start, len));
      last = m.Forward(
          part, opts,
          [&](int l, const Matrix& h) {
            size_t differing = 0;
            for (size_t t = 0; t < len; ++t) {
              differing += std::memcmp(h.Row(t), full[l].Row(start + t), h.cols() * 4) != 0;
            }
            EXPECT_EQ(differing, 0u)
                << "chunk " << chunk << " layer " << l << " tokens from " << start;
          },
          std::span(&state, 1));
      state = last.states[0];
    }
    EXPECT_EQ(0, std::memcmp(last.logits.data(), full_result.logits.data(),
                             last.logits.cols() * sizeof(float)))
        << "chunk " << chunk;
    for (size_t b = 0; b < state.size(); ++b) {
      EXPECT_EQ(state[b].wkv, full_result.states[0][b].wkv) << "chunk " << chunk;
      EXPECT_EQ(state[b].time_shift, full_result.states[0][b].time_shift) << "chunk " << chunk;
      EXPECT_EQ(state[b].channel_shift, full_result.states[0][b].channel_shift)
          << "chunk " << chunk;
    }
  }
}

}  // namespace rwkv_embed::testing
