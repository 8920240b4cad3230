// The on-disk block layouts of the quantized GGUF types, byte for byte as ggml writes them.
//
// Every quantized row is a sequence of these blocks. Scales are fp16 bit patterns (uint16_t) except
// in Q8_K, which only exists in memory as the activation format of the K-quant dot products.
// Multi-byte fields are little-endian, as on every machine icam targets.
//
// Pure data: no functions here, so the header is safe to include from the AVX2 translation units.
#pragma once

#include <cstdint>

namespace icam::llm {

// Elements per block of the "legacy" formats (Q4_0, Q5_0, Q8_0).
inline constexpr int kBlock32 = 32;
// Elements per super-block of the K-quants (Q4_K, Q5_K, Q6_K, Q8_K).
inline constexpr int kBlock256 = 256;

// x[j] = d * (q[j] - 8). Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};

// x[j] = d * (q[j] - 16), q 5 bits: the low 4 bits as in Q4_0, bit 4 is bit j of qh (a
// little-endian 32-bit word).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};

// x[j] = d * qs[j].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};

// 8 sub-blocks of 32: x = d * scale[s] * q - dmin * min[s], q 4 bits, scale and min 6 bits each,
// packed in `scales` as described in k_scales.h.
// qs holds 4 chunks of 32 bytes; chunk c's low nibbles are sub-block 2c, high nibbles 2c + 1.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};

// As Q4_K with a fifth bit: bit s of qh[l] is bit 4 of element l of sub-block s.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};

// 16 sub-blocks of 16: x = d * scales[s] * (q - 32), q 6 bits. The block is two halves of 128;
// half h uses ql[64h .. 64h+63], qh[32h .. 32h+31] and scales[8h .. 8h+7]. Within a half, for
// l < 32: element l     = low nibble of ql[l]      | bits 0-1 of qh[l] << 4,
//         element l+32  = low nibble of ql[l+32]   | bits 2-3 of qh[l] << 4,
//         element l+64  = high nibble of ql[l]     | bits 4-5 of qh[l] << 4,
//         element l+96  = high nibble of ql[l+32]  | bits 6-7 of qh[l] << 4.
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

// Activations for the K-quant dot products: x = d * qs, with float d, and bsums[g] the sum of
// qs[16g .. 16g+15] so that the integer dot products can apply per-sub-block offsets cheaply.
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace icam::llm
