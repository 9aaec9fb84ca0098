// eval::MethodResult to and from bytes, everything in it (splits, layers, every cosine, metrics,
// CIs, spreads), so that a method evaluated in another process (rwkv-embed-mpi's sweeps) is
// rebuilt exactly. CBOR (nlohmann::json::to_cbor): doubles travel as IEEE-754 binary64, NaN and
// infinities included (plain JSON text would turn a NaN ROC-AUC into null).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "eval/evaluator.h"

namespace rwkv_embed::report {

nlohmann::json MethodResultToJson(const eval::MethodResult& m);
// FormatError naming the missing or mistyped field.
eval::MethodResult MethodResultFromJson(const nlohmann::json& j);

std::vector<uint8_t> EncodeCbor(const nlohmann::json& j);
// FormatError when the bytes are not CBOR.
nlohmann::json DecodeCbor(const std::vector<uint8_t>& bytes);

}  // namespace rwkv_embed::report
