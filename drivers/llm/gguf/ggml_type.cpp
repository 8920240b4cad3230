#include "drivers/llm/gguf/ggml_type.h"

#include <array>
#include <cstdio>
#include <cstdlib>

namespace icam::llm {
namespace {

// Block layouts as ggml defines them. A K-quant "super-block" holds 256 weights; the byte counts
// are the sizes of ggml's block structs (scales, minimums and packed quants together).
constexpr std::array<GgmlTypeInfo, 20> kTypes = {{
    {GgmlType::F32, "f32", 1, 4, true},       {GgmlType::F16, "f16", 1, 2, true},
    {GgmlType::Q4_0, "q4_0", 32, 18, true},   {GgmlType::Q4_1, "q4_1", 32, 20, false},
    {GgmlType::Q5_0, "q5_0", 32, 22, true},   {GgmlType::Q5_1, "q5_1", 32, 24, false},
    {GgmlType::Q8_0, "q8_0", 32, 34, true},   {GgmlType::Q8_1, "q8_1", 32, 36, false},
    {GgmlType::Q2_K, "q2_K", 256, 84, false}, {GgmlType::Q3_K, "q3_K", 256, 110, false},
    {GgmlType::Q4_K, "q4_K", 256, 144, true}, {GgmlType::Q5_K, "q5_K", 256, 176, true},
    {GgmlType::Q6_K, "q6_K", 256, 210, true}, {GgmlType::Q8_K, "q8_K", 256, 292, false},
    {GgmlType::I8, "i8", 1, 1, false},        {GgmlType::I16, "i16", 1, 2, false},
    {GgmlType::I32, "i32", 1, 4, false},      {GgmlType::I64, "i64", 1, 8, false},
    {GgmlType::F64, "f64", 1, 8, false},      {GgmlType::BF16, "bf16", 1, 2, true},
}};

const GgmlTypeInfo* find_type(uint32_t raw_type) {
  for (const GgmlTypeInfo& info : kTypes) {
    if (static_cast<uint32_t>(info.type) == raw_type) return &info;
  }
  return nullptr;
}

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t raw_type) {
  const GgmlTypeInfo* info = find_type(raw_type);
  if (info == nullptr) return std::nullopt;
  return *info;
}

const GgmlTypeInfo& ggml_type_info(GgmlType type) {
  const GgmlTypeInfo* info = find_type(static_cast<uint32_t>(type));
  if (info == nullptr) {
    // A GgmlType value outside the table can only come from a cast that skipped validation
    // (ggml_type_info(uint32_t) is the checked way in); that is a bug, not bad input.
    std::fprintf(stderr, "icam: ggml_type_info called with unknown type id %u\n",
                 static_cast<unsigned>(type));
    std::abort();
  }
  return *info;
}

std::string_view ggml_type_name(GgmlType type) {
  return ggml_type_info(type).name;
}

uint64_t ggml_row_bytes(GgmlType type, uint64_t n) {
  return ggml_row_bytes(ggml_type_info(type), n);
}

}  // namespace icam::llm
