#include "drivers/llm/gguf/ggml_type.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace icam::llm {
namespace {

struct Expected {
  uint32_t id;
  const char* name;
  uint32_t block_elems;
  uint32_t block_bytes;
  bool computable;
};

TEST(GgmlType, TableMatchesGgmlLayouts) {
  const Expected expected[] = {
      {0, "f32", 1, 4, true},        {1, "f16", 1, 2, true},        {2, "q4_0", 32, 18, true},
      {3, "q4_1", 32, 20, false},    {6, "q5_0", 32, 22, true},     {7, "q5_1", 32, 24, false},
      {8, "q8_0", 32, 34, true},     {9, "q8_1", 32, 36, false},    {10, "q2_K", 256, 84, false},
      {11, "q3_K", 256, 110, false}, {12, "q4_K", 256, 144, true},  {13, "q5_K", 256, 176, true},
      {14, "q6_K", 256, 210, true},  {15, "q8_K", 256, 292, false}, {24, "i8", 1, 1, false},
      {25, "i16", 1, 2, false},      {26, "i32", 1, 4, false},      {27, "i64", 1, 8, false},
      {28, "f64", 1, 8, false},      {30, "bf16", 1, 2, true},
  };
  for (const Expected& e : expected) {
    SCOPED_TRACE(e.name);
    const std::optional<GgmlTypeInfo> info = ggml_type_info(e.id);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(static_cast<uint32_t>(info->type), e.id);
    EXPECT_EQ(info->name, e.name);
    EXPECT_EQ(info->block_elems, e.block_elems);
    EXPECT_EQ(info->block_bytes, e.block_bytes);
    EXPECT_EQ(info->computable, e.computable);
    EXPECT_EQ(ggml_type_name(info->type), e.name);
    EXPECT_EQ(&ggml_type_info(info->type), &ggml_type_info(info->type));
  }
}

TEST(GgmlType, UnknownIdsHaveNoInfo) {
  for (uint32_t id : {4u, 5u, 16u, 23u, 29u, 31u, 39u, 1000u, 0xFFFFFFFFu}) {
    EXPECT_FALSE(ggml_type_info(id).has_value()) << id;
  }
}

TEST(GgmlType, RowBytes) {
  EXPECT_EQ(ggml_row_bytes(GgmlType::F32, 10), 40u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::BF16, 10), 20u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q8_0, 64), 68u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 512), 288u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q6_K, 768), 630u);
  EXPECT_EQ(ggml_row_bytes(ggml_type_info(GgmlType::Q5_0), 32), 22u);
}

}  // namespace
}  // namespace icam::llm
