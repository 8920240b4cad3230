// Hand-built blocks with known meaning: these pin the on-disk bit layout of each format (element
// order, nibble and high-bit placement, scale packing) independently of the quantizers.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "drivers/llm/gguf/ggml_type.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm {
namespace {

void put_u16(std::vector<uint8_t>& block, size_t offset, uint16_t v) {
  block[offset] = static_cast<uint8_t>(v & 0xff);
  block[offset + 1] = static_cast<uint8_t>(v >> 8);
}

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& block) {
  const int64_t n = ggml_type_info(t).block_elems;
  EXPECT_EQ(block.size(), ggml_type_info(t).block_bytes);
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(t, block.data(), out.data(), n);
  return out;
}

TEST(BlockLayout, Q4_0) {
  // d = 0.5 (fp16 0x3800); byte j holds element j in its low nibble and element j + 16 in its high
  // nibble; codes are offset by 8.
  std::vector<uint8_t> block(18);
  put_u16(block, 0, 0x3800);
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> x = decode(GgmlType::Q4_0, block);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(x[j], 0.5f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(x[j + 16], 0.5f * static_cast<float>(7 - j)) << j;
  }
  EXPECT_EQ(x[0], -4.0f);
  EXPECT_EQ(x[16], 3.5f);
}

TEST(BlockLayout, Q8_0) {
  // d = 0.25 (0x3400), then 32 int8 codes in element order, including -128.
  std::vector<uint8_t> block(34);
  put_u16(block, 0, 0x3400);
  for (int j = 0; j < 32; ++j)
    block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(8 * j - 128));
  const std::vector<float> x = decode(GgmlType::Q8_0, block);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(x[j], 0.25f * static_cast<float>(8 * j - 128)) << j;
  EXPECT_EQ(x[0], -32.0f);
  EXPECT_EQ(x[31], 30.0f);
}

TEST(BlockLayout, Q5_0) {
  // d = 1 (0x3c00); qh is a little-endian word whose bit j is bit 4 of element j's code.
  std::vector<uint8_t> block(22);
  put_u16(block, 0, 0x3c00);
  const uint32_t high = 0xf0f0a5c3u;  // bytes c3 a5 f0 f0
  block[2] = 0xc3;
  block[3] = 0xa5;
  block[4] = 0xf0;
  block[5] = 0xf0;
  for (int j = 0; j < 16; ++j) block[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> x = decode(GgmlType::Q5_0, block);
  for (int j = 0; j < 16; ++j) {
    const int lo = j | static_cast<int>(((high >> j) & 1) << 4);
    const int hi = (15 - j) | static_cast<int>(((high >> (j + 16)) & 1) << 4);
    EXPECT_EQ(x[j], static_cast<float>(lo - 16)) << j;
    EXPECT_EQ(x[j + 16], static_cast<float>(hi - 16)) << j;
  }
  EXPECT_EQ(x[0], 0.0f);    // code 0 | 16
  EXPECT_EQ(x[2], -14.0f);  // code 2, bit 2 clear
  EXPECT_EQ(x[16], -1.0f);  // code 15, bit 16 (bit 0 of 0xf0) clear
  EXPECT_EQ(x[20], 11.0f);  // code 11 | 16, bit 20 (bit 4 of 0xf0) set
}

// The scales and mins used by the Q4_K and Q5_K blocks below, and their 12 packed bytes written
// out by hand: bytes 0-3 = scale[0-3] | top two bits of scale[4-7] << 6, bytes 4-7 likewise for
// the mins, bytes 8-11 = low nibble of scale[4-7] | low nibble of min[4-7] << 4.
constexpr int kScales[8] = {1, 2, 3, 4, 33, 50, 63, 17};
constexpr int kMins[8] = {0, 1, 2, 3, 40, 41, 62, 5};
constexpr uint8_t kPackedScales[12] = {0x81, 0xc2, 0xc3, 0x44, 0x80, 0x81,
                                       0xc2, 0x03, 0x81, 0x92, 0xef, 0x51};

// Distinct 4-bit codes for sub-block s, element l.
int nibble_code(int s, int l) {
  return (s * 3 + l * 5) & 15;
}

TEST(BlockLayout, Q4_K) {
  // d = 1 (0x3c00), dmin = 0.5 (0x3800), scales, then 4 chunks of 32 bytes: chunk c holds
  // sub-block 2c in its low nibbles and 2c + 1 in its high nibbles.
  std::vector<uint8_t> block(144);
  put_u16(block, 0, 0x3c00);
  put_u16(block, 2, 0x3800);
  std::memcpy(block.data() + 4, kPackedScales, 12);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      block[16 + 32 * c + l] =
          static_cast<uint8_t>(nibble_code(2 * c, l) | (nibble_code(2 * c + 1, l) << 4));
    }
  }
  const std::vector<float> x = decode(GgmlType::Q4_K, block);
  for (int s = 0; s < 8; ++s) {
    for (int l = 0; l < 32; ++l) {
      const float expected = static_cast<float>(kScales[s] * nibble_code(s, l)) - 0.5f * kMins[s];
      ASSERT_EQ(x[32 * s + l], expected) << "sub-block " << s << " element " << l;
    }
  }
  // Spot checks worked out by hand: sub-block 6 (scale 63, min 62), element 1: code 23 & 15 = 7.
  EXPECT_EQ(x[6 * 32 + 1], 63.0f * 7 - 31.0f);
  EXPECT_EQ(x[0], 0.0f);
}

TEST(BlockLayout, Q5_K) {
  // As Q4_K, plus qh[32] after the scales: bit s of qh[l] is bit 4 of sub-block s's element l.
  std::vector<uint8_t> block(176);
  put_u16(block, 0, 0x3c00);
  put_u16(block, 2, 0x3800);
  std::memcpy(block.data() + 4, kPackedScales, 12);
  for (int l = 0; l < 32; ++l) block[16 + l] = static_cast<uint8_t>(l * 37 + 11);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      block[48 + 32 * c + l] =
          static_cast<uint8_t>(nibble_code(2 * c, l) | (nibble_code(2 * c + 1, l) << 4));
    }
  }
  const std::vector<float> x = decode(GgmlType::Q5_K, block);
  for (int s = 0; s < 8; ++s) {
    for (int l = 0; l < 32; ++l) {
      const int high = (static_cast<uint8_t>(l * 37 + 11) >> s) & 1;
      const int code = nibble_code(s, l) | (high << 4);
      const float expected = static_cast<float>(kScales[s] * code) - 0.5f * kMins[s];
      ASSERT_EQ(x[32 * s + l], expected) << "sub-block " << s << " element " << l;
    }
  }
  // Element 0 of sub-block 0: qh[0] = 11 (bit 0 set), code 0 | 16, scale 1, min 0.
  EXPECT_EQ(x[0], 16.0f);
}

TEST(BlockLayout, Q6_K) {
  // ql[128], qh[64], int8 scales[16], d = 0.25 (0x3400) last. Element e = 128 h + 32 r + l takes
  // its low 4 bits from ql[64 h + 32 (r % 2) + l] (low nibble for r < 2, high for r >= 2), its
  // top 2 bits from bits 2r, 2r + 1 of qh[32 h + l], and scale e / 16; value d * scale * (q - 32).
  std::vector<uint8_t> block(210);
  for (int i = 0; i < 128; ++i) block[i] = static_cast<uint8_t>(i * 7);
  for (int i = 0; i < 64; ++i) block[128 + i] = static_cast<uint8_t>(i * 13 + 5);
  for (int s = 0; s < 16; ++s)
    block[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(9 * s - 70));
  put_u16(block, 208, 0x3400);
  const std::vector<float> x = decode(GgmlType::Q6_K, block);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = (e % 128) / 32, l = e % 32;
    const int low = (block[64 * h + 32 * (r % 2) + l] >> (4 * (r / 2))) & 15;
    const int top = (block[128 + 32 * h + l] >> (2 * r)) & 3;
    const int scale = 9 * (e / 16) - 70;
    ASSERT_EQ(x[e], 0.25f * static_cast<float>(scale * ((low | (top << 4)) - 32))) << e;
  }
  // Worked by hand. Element 0: ql[0] = 0, qh[0] = 5 -> bits 0-1 = 1, q = 16; scale -70:
  // 0.25 * -70 * (16 - 32) = 280.
  EXPECT_EQ(x[0], 280.0f);
  // Element 200 = 128 + 64 + 8 (h 1, r 2, l 8): ql[72] = 504 & 255 = 0xf8, high nibble 15;
  // qh[40] = 525 & 255 = 13, bits 4-5 = 0; q = 15; scale[12] = 38: 0.25 * 38 * -17 = -161.5.
  EXPECT_EQ(x[200], -161.5f);
}

TEST(BlockLayout, FloatFormats) {
  const uint16_t f16[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};  // 1, -2, 2^-24, 65504
  float out[4];
  dequantize_row(GgmlType::F16, f16, out, 4);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 0x1p-24f);
  EXPECT_EQ(out[3], 65504.0f);
  const uint16_t bf16[3] = {0x3f80, 0xc040, 0x4049};  // 1, -3, 3.140625
  dequantize_row(GgmlType::BF16, bf16, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
  EXPECT_EQ(out[2], 3.140625f);
}

TEST(BlockLayout, SizesMatchGgmlTypeTable) {
  EXPECT_EQ(ggml_type_info(GgmlType::Q4_0).block_bytes, 18u);
  EXPECT_EQ(ggml_type_info(GgmlType::Q5_0).block_bytes, 22u);
  EXPECT_EQ(ggml_type_info(GgmlType::Q8_0).block_bytes, 34u);
  EXPECT_EQ(ggml_type_info(GgmlType::Q4_K).block_bytes, 144u);
  EXPECT_EQ(ggml_type_info(GgmlType::Q5_K).block_bytes, 176u);
  EXPECT_EQ(ggml_type_info(GgmlType::Q6_K).block_bytes, 210u);
  EXPECT_EQ(ggml_type_info(GgmlType::Q8_K).block_bytes, 292u);
}

TEST(BlockLayout, ComputableTypes) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q5_0,
                     GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    EXPECT_TRUE(is_computable(t)) << ggml_type_name(t);
  }
  for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q5_1, GgmlType::Q8_1, GgmlType::Q2_K, GgmlType::Q3_K,
                     GgmlType::Q8_K, GgmlType::I8, GgmlType::F64}) {
    EXPECT_FALSE(is_computable(t)) << ggml_type_name(t);
  }
}

}  // namespace
}  // namespace icam::llm
