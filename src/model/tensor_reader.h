// Checkpoint tensors read into the forms the forward passes want, with the checks every
// architecture's weight schema needs: dtype, shape, and (on request) a NaN/Inf scan, each error
// naming the tensor and its file. Callers pass the checkpoint's own tensor names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/matrix.h"
#include "io/safetensors.h"
#include "kernels/gemm.h"
#include "model/sequence_model.h"

namespace rwkv_embed {

struct LayerNormWeights {
  std::vector<float> weight, bias;  // [dim]
};

// "[5, 32, 128]".
std::string ShapeString(const std::vector<int64_t>& shape);

// "tensor 'NAME' in FILE has a non-finite value at element N".
std::string NonFiniteMessage(const TensorView& t, int64_t element);

// The tensors a model uses, so that a non-finite result can be explained on demand by the first
// non-finite weight in forward order (embeddings, input LayerNorm, blocks 0..L-1, output
// LayerNorm, head) whatever order the loader read them in. Knows the three namings' prefixes.
class UsedTensors {
 public:
  void Add(const TensorView& t);
  // Reads every used weight: the on-demand form of LoadOptions::check_finite.
  std::optional<std::string> FirstNonFinite() const;

 private:
  std::vector<std::pair<int64_t, const TensorView*>> used_;  // (forward rank, tensor)
};

// Sizes come from tensor shapes; a config.json that gives one (from_config set) must agree
// (ShapeError "config.json field 'FIELD' is N but tensor shapes (SOURCE) give M").
void CheckConfigField(const char* field, std::optional<int64_t> from_config, int64_t from_shapes,
                      const char* source);

class TensorReader {
 public:
  // Matrices that cannot be used in place (transposed, or F16 widened to F32) are copied into
  // `owned` (raw bytes, 64-byte aligned), which must outlive the returned WeightMatrix views.
  // Every tensor read is recorded in `used`.
  TensorReader(const TensorStore& store, const LoadOptions& options,
               std::vector<AlignedVector<std::byte>>& owned, UsedTensors& used)
      : store_(store), options_(options), owned_(owned), used_(used) {}

  const TensorStore& store() const { return store_; }

  // The tensor, of dtype F32, F16 or BF16 (ShapeError otherwise; NumericError for a non-finite
  // value when LoadOptions::check_finite).
  const TensorView& Tensor(const std::string& name);
  // Tensor() with an exact shape.
  const TensorView& Shaped(const std::string& name, const std::vector<int64_t>& shape);
  // A vector parameter stored with any number of unit dimensions ([1, 1, C], [H, S], [C]).
  std::vector<float> Vector(const std::string& name, int64_t numel);
  LayerNormWeights LayerNorm(const std::string& prefix, int64_t dim);
  // A [rows, cols] matrix used as stored (BF16/F32 in place; F16 widened to an owned F32 copy).
  kernels::WeightMatrix Matrix(const std::string& name, int64_t rows, int64_t cols);
  // `t` holds [rows, cols] (= [in, out], used as x @ W) from element `offset_elems`; returned as
  // [cols, rows] so that x @ W = x @ W'^T. BF16/F32 keep their dtype, F16 becomes F32.
  kernels::WeightMatrix Transposed(const TensorView& t, int64_t rows, int64_t cols,
                                   int64_t offset_elems = 0);
  // Tensor() then a check that it has `dims` dimensions.
  const TensorView& WithRank(const std::string& name, size_t dims);

  static std::string Where(const TensorView& t) { return t.file ? t.file->string() : "checkpoint"; }

 private:
  kernels::WeightMatrix Owned(const std::vector<float>& values, int64_t rows, int64_t cols);

  const TensorStore& store_;
  LoadOptions options_;
  std::vector<AlignedVector<std::byte>>& owned_;
  UsedTensors& used_;
};

}  // namespace rwkv_embed
