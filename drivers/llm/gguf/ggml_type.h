// Tensor element types as numbered in GGUF files (ggml's type ids), with their block layout.
// A quantized type stores `block_elems` weights in `block_bytes` bytes; rows are whole blocks.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace icam::llm {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;    // as ggml prints it: "q4_K", "f32", ...
  uint32_t block_elems;     // weights per block (1 for plain types)
  uint32_t block_bytes;     // bytes per block
  bool computable;          // icam has dequantization and dot products for it
};

// The layout of a type id read from a file, or nullopt when the id is not a known ggml type.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t raw_type);
const GgmlTypeInfo& ggml_type_info(GgmlType type);
std::string_view ggml_type_name(GgmlType type);

// Bytes of a row of `n` elements; n must be a multiple of the block size (checked by callers).
inline uint64_t ggml_row_bytes(const GgmlTypeInfo& info, uint64_t n) {
  return n / info.block_elems * info.block_bytes;
}
uint64_t ggml_row_bytes(GgmlType type, uint64_t n);

}  // namespace icam::llm
