#include "model/state_file.h"

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/tensor_reader.h"

namespace rwkv_embed {
namespace {

struct Piece {
  const char* name;
  std::vector<float> BlockState::*member;
};
constexpr Piece kPieces[] = {{"time_shift", &BlockState::time_shift},
                             {"wkv", &BlockState::wkv},
                             {"channel_shift", &BlockState::channel_shift}};

// The stored shape of one piece: [C] for the shifts, [H, N, N] for the matrix (N = size / C).
std::vector<int64_t> PieceShape(const std::vector<float>& zero, int64_t C, bool matrix) {
  const int64_t size = static_cast<int64_t>(zero.size());
  if (!matrix || C == 0) return {size};
  const int64_t N = size / C;
  return {N == 0 ? 0 : C / N, N, N};
}

std::string Name(size_t block, const Piece& p) {
  return "block." + std::to_string(block) + "." + p.name;
}

}  // namespace

void SaveSequenceState(const std::filesystem::path& path, const SequenceModel& model,
                       const SequenceState& state, int64_t tokens) {
  const SequenceState zero = model.ZeroState();
  if (state.size() != zero.size()) {
    throw UsageError("state has " + std::to_string(state.size()) + " blocks, the model " +
                     std::to_string(zero.size()));
  }
  const int64_t C = model.hidden_size();
  std::vector<TensorToWrite> tensors;
  for (size_t b = 0; b < zero.size(); ++b) {
    for (const Piece& p : kPieces) {
      const std::vector<float>& v = state[b].*p.member;
      if (v.size() != (zero[b].*p.member).size()) {
        throw UsageError("state " + Name(b, p) + " does not have the model's shape");
      }
      TensorToWrite t{Name(b, p), DType::kF32, PieceShape(v, C, &p == &kPieces[1]), {}};
      t.bytes.resize(v.size() * sizeof(float));
      std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
      tensors.push_back(std::move(t));
    }
  }
  const std::map<std::string, std::string> metadata = {
      {"format", kStateFileFormat},       {"architecture", std::string(model.Architecture())},
      {"hidden_size", std::to_string(C)}, {"num_blocks", std::to_string(model.num_blocks())},
      {"model", model.Describe()},        {"tokens", std::to_string(tokens)}};
  std::filesystem::path partial = path;
  partial += ".partial";
  try {
    WriteSafetensors(partial, tensors, metadata);
    std::filesystem::rename(partial, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(partial, ec);
    throw;
  }
}

SequenceState LoadSequenceState(const std::filesystem::path& path, const SequenceModel& model) {
  if (!std::filesystem::is_regular_file(path))
    throw IoError("state file not found: " + path.string());
  const SafetensorsFile file = SafetensorsFile::Open(path);
  const auto& meta = file.metadata();
  const auto field = [&](const std::string& key) -> std::string {
    const auto it = meta.find(key);
    if (it == meta.end()) {
      throw FormatError(path.string() + ": not an rwkv-embed state file (no metadata field '" +
                        key + "')");
    }
    return it->second;
  };
  if (field("format") != kStateFileFormat) {
    throw FormatError(path.string() + ": format is \"" + field("format") + "\", expected \"" +
                      kStateFileFormat + "\"");
  }
  const std::string where = path.string() + " (saved for " + field("model") + ")";
  if (field("architecture") != model.Architecture()) {
    throw ShapeError(where + ": architecture " + field("architecture") + ", the model is " +
                     std::string(model.Architecture()));
  }
  const SequenceState zero = model.ZeroState();
  if (field("num_blocks") != std::to_string(zero.size()) ||
      field("hidden_size") != std::to_string(model.hidden_size())) {
    throw ShapeError(where + ": num_blocks " + field("num_blocks") + ", hidden_size " +
                     field("hidden_size") + "; the model has " + std::to_string(zero.size()) +
                     " blocks of hidden size " + std::to_string(model.hidden_size()));
  }
  const size_t expected_tensors = zero.size() * std::size(kPieces);
  if (file.tensors().size() != expected_tensors) {
    throw ShapeError(where + ": " + std::to_string(file.tensors().size()) + " tensors, expected " +
                     std::to_string(expected_tensors));
  }
  SequenceState state(zero.size());
  for (size_t b = 0; b < zero.size(); ++b) {
    for (const Piece& p : kPieces) {
      const std::string name = Name(b, p);
      const TensorView* t = file.Find(name);
      if (t == nullptr) throw ShapeError(where + ": tensor '" + name + "' missing");
      const auto shape = PieceShape(zero[b].*p.member, model.hidden_size(), &p == &kPieces[1]);
      if (t->dtype != DType::kF32 || t->shape != shape) {
        throw ShapeError(where + ": tensor '" + name + "' is " + std::string(DTypeName(t->dtype)) +
                         " " + t->ShapeString() + ", the model needs F32 " + ShapeString(shape));
      }
      state[b].*p.member = ToFloat32(*t);
    }
  }
  return state;
}

}  // namespace rwkv_embed
