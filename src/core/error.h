// The library's exception hierarchy. Every message names the file, tensor, field or line at fault.
// Kernels assert instead of throwing; front ends map these to exit codes / HTTP statuses
// (see ExitCodeFor).
#pragma once

#include <new>
#include <stdexcept>
#include <string>

namespace rwkv_embed {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file could not be opened, read, mapped or written.
class IoError : public Error {
 public:
  using Error::Error;
};

// A file's content is malformed: safetensors header, config.json, vocab line, TSV row, UTF-8.
class FormatError : public Error {
 public:
  using Error::Error;
};

// A tensor is missing, of the wrong dtype, or of the wrong shape for the model.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A dataset or input is well-formed but unusable: bad label, missing column, empty input.
class DataError : public Error {
 public:
  using Error::Error;
};

// NaN or Inf where finite numbers are required (weights on request, inputs, results).
class NumericError : public Error {
 public:
  using Error::Error;
};

// An invalid option or argument from the caller (bad layer spec, unknown pooling, ...).
class UsageError : public Error {
 public:
  using Error::Error;
};

// Exit code of a process that ran out of memory (std::bad_alloc), distinct from every error class.
inline constexpr int kOutOfMemoryExit = 8;

// Process exit codes used by the CLI: 0 success, 1 unexpected internal error.
inline int ExitCodeFor(const std::exception& e) {
  if (dynamic_cast<const UsageError*>(&e) != nullptr) return 2;
  if (dynamic_cast<const IoError*>(&e) != nullptr) return 3;
  if (dynamic_cast<const FormatError*>(&e) != nullptr) return 4;
  if (dynamic_cast<const ShapeError*>(&e) != nullptr) return 5;
  if (dynamic_cast<const DataError*>(&e) != nullptr) return 6;
  if (dynamic_cast<const NumericError*>(&e) != nullptr) return 7;
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return kOutOfMemoryExit;
  return 1;
}

}  // namespace rwkv_embed
