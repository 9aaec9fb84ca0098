// Checkpoint tensors read into the forms the forward passes want, with the checks every
// architecture's weight schema needs: dtype, shape, and (on request) a NaN/Inf scan, each error
// naming the tensor and its file. Callers pass the checkpoint's own tensor names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
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

class TensorReader {
 public:
  // Matrices that cannot be used in place (transposed, or F16 widened to F32) are copied into
  // `owned` (raw bytes, 64-byte aligned), which must outlive the returned WeightMatrix views.
  TensorReader(const TensorStore& store, const LoadOptions& options,
               std::vector<AlignedVector<std::byte>>& owned)
      : store_(store), options_(options), owned_(owned) {}

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
};

}  // namespace rwkv_embed
