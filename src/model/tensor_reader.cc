#include "model/tensor_reader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unordered_set>

#include "core/error.h"

namespace rwkv_embed {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const TensorView& TensorReader::Tensor(const std::string& name) {
  const TensorView& t = store_.Get(name);
  if (t.dtype != DType::kF32 && t.dtype != DType::kBF16 && t.dtype != DType::kF16) {
    throw ShapeError("tensor '" + name + "' in " + Where(t) + " has dtype " +
                     std::string(DTypeName(t.dtype)) + "; expected F32, F16 or BF16");
  }
  if (options_.check_finite) {
    if (auto bad = FindNonFinite(t)) throw NumericError(NonFiniteMessage(t, *bad));
  }
  used_.Add(t);
  return t;
}

std::string NonFiniteMessage(const TensorView& t, int64_t element) {
  return "tensor '" + t.name + "' in " + TensorReader::Where(t) +
         " has a non-finite value at element " + std::to_string(element);
}

namespace {

// Position of a tensor in the forward pass, from its name in any of the three namings (authors'
// `emb`/`blocks.N.ln0`/`blocks.N`/`ln_out`/`head`, HF RWKV-6 `rwkv.embeddings`/`pre_ln`/
// `rwkv.blocks.N`/`rwkv.ln_out`, fla `model.embeddings`/`pre_norm`/`model.layers.N`/`model.norm`).
int64_t ForwardRank(const std::string& name) {
  constexpr int64_t kAfterBlocks = int64_t{1} << 40;
  const auto has = [&](std::string_view part) { return name.find(part) != std::string::npos; };
  if (name.starts_with("emb.") || has(".emb.") || has("embeddings.")) return 0;
  if (has(".ln0.") || has(".pre_ln.") || has(".pre_norm.")) return 1;
  for (std::string_view blocks : {"blocks.", "layers."}) {
    const size_t at = name.find(blocks);
    if (at != std::string::npos) return 2 + std::atoll(name.c_str() + at + blocks.size());
  }
  if (has("ln_out.") || name.starts_with("model.norm.")) return kAfterBlocks;
  return kAfterBlocks + 1;  // LM head, anything else
}

}  // namespace

void UsedTensors::Add(const TensorView& t) { used_.emplace_back(ForwardRank(t.name), &t); }

std::optional<std::string> UsedTensors::FirstNonFinite() const {
  auto order = used_;
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::unordered_set<const TensorView*> seen;
  for (const auto& [rank, t] : order) {
    if (!seen.insert(t).second) continue;
    if (auto bad = FindNonFinite(*t)) return NonFiniteMessage(*t, *bad);
  }
  return std::nullopt;
}

const TensorView& TensorReader::Shaped(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView& t = Tensor(name);
  if (t.shape != shape) {
    throw ShapeError("tensor '" + t.name + "' in " + Where(t) + " has shape " + t.ShapeString() +
                     ", expected " + ShapeString(shape));
  }
  return t;
}

void CheckConfigField(const char* field, std::optional<int64_t> from_config, int64_t from_shapes,
                      const char* source) {
  if (from_config && *from_config != from_shapes) {
    throw ShapeError("config.json field '" + std::string(field) + "' is " +
                     std::to_string(*from_config) + " but tensor shapes (" + source + ") give " +
                     std::to_string(from_shapes));
  }
}

const TensorView& TensorReader::WithRank(const std::string& name, size_t dims) {
  const TensorView& t = Tensor(name);
  if (t.shape.size() != dims) {
    throw ShapeError("tensor '" + t.name + "' in " + Where(t) + " has shape " + t.ShapeString() +
                     ", expected " + std::to_string(dims) + " dimensions");
  }
  return t;
}

std::vector<float> TensorReader::Vector(const std::string& name, int64_t numel) {
  const TensorView& t = Tensor(name);
  if (t.numel() != numel) {
    throw ShapeError("tensor '" + t.name + "' in " + Where(t) + " has shape " + t.ShapeString() +
                     " (" + std::to_string(t.numel()) + " elements), expected " +
                     std::to_string(numel) + " elements");
  }
  return ToFloat32(t);
}

LayerNormWeights TensorReader::LayerNorm(const std::string& prefix, int64_t dim) {
  return {Vector(prefix + ".weight", dim), Vector(prefix + ".bias", dim)};
}

kernels::WeightMatrix TensorReader::Matrix(const std::string& name, int64_t rows, int64_t cols) {
  const TensorView& t = Shaped(name, {rows, cols});
  if (t.dtype == DType::kF16) return Owned(ToFloat32(t), rows, cols);
  return {t.dtype, t.bytes.data(), rows, cols};
}

kernels::WeightMatrix TensorReader::Transposed(const TensorView& t, int64_t rows, int64_t cols,
                                               int64_t offset_elems) {
  const size_t esize = t.dtype == DType::kF16 ? 4 : DTypeSize(t.dtype);
  const DType out_type = t.dtype == DType::kF16 ? DType::kF32 : t.dtype;
  auto& buf = owned_.emplace_back(static_cast<size_t>(rows * cols) * esize);
  const std::byte* src = t.bytes.data() + offset_elems * DTypeSize(t.dtype);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const std::byte* s = src + (r * cols + c) * DTypeSize(t.dtype);
      std::byte* d = buf.data() + (c * rows + r) * esize;
      if (t.dtype == DType::kF16) {
        uint16_t h;
        std::memcpy(&h, s, 2);
        const float f = F16ToF32(h);
        std::memcpy(d, &f, 4);
      } else {
        std::memcpy(d, s, esize);
      }
    }
  }
  return {out_type, buf.data(), cols, rows};
}

kernels::WeightMatrix TensorReader::Owned(const std::vector<float>& values, int64_t rows,
                                          int64_t cols) {
  auto& buf = owned_.emplace_back(values.size() * sizeof(float));
  std::memcpy(buf.data(), values.data(), buf.size());
  return {DType::kF32, buf.data(), rows, cols};
}

}  // namespace rwkv_embed
