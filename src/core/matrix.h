// A dense, row-major float matrix that owns its storage. Rows are 64-byte aligned when cols is a
// multiple of 16, which the kernels exploit but never require.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <vector>

namespace rwkv_embed {

template <typename T, size_t kAlign = 64>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  explicit AlignedAllocator(const AlignedAllocator<U, kAlign>& /*other*/) {}
  template <typename U>
  struct rebind {  // NOLINT(readability-identifier-naming): allocator protocol
    using other = AlignedAllocator<U, kAlign>;
  };
  T* allocate(size_t n) {  // NOLINT(readability-identifier-naming)
    const size_t bytes = (n * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, bytes == 0 ? kAlign : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t /*n*/) { std::free(p); }  // NOLINT(readability-identifier-naming)
  bool operator==(const AlignedAllocator& /*other*/) const { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

class Matrix {
 public:
  Matrix() = default;
  Matrix(int64_t rows, int64_t cols) : rows_(rows), cols_(cols), data_(rows * cols, 0.0f) {}

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t size() const { return rows_ * cols_; }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float* Row(int64_t r) {
    assert(r >= 0 && r < rows_);
    return data_.data() + r * cols_;
  }
  const float* Row(int64_t r) const {
    assert(r >= 0 && r < rows_);
    return data_.data() + r * cols_;
  }
  std::span<float> RowSpan(int64_t r) { return {Row(r), static_cast<size_t>(cols_)}; }
  std::span<const float> RowSpan(int64_t r) const { return {Row(r), static_cast<size_t>(cols_)}; }
  std::span<const float> Flat() const { return {data_.data(), data_.size()}; }
  std::span<float> Flat() { return {data_.data(), data_.size()}; }

  // Changes the shape, keeping capacity; contents are unspecified afterwards.
  void Resize(int64_t rows, int64_t cols) {
    rows_ = rows;
    cols_ = cols;
    data_.resize(rows * cols);
  }

 private:
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  AlignedVector<float> data_;
};

}  // namespace rwkv_embed
