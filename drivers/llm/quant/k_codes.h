// The codes of a Q4_K block one at a time, as the scalar reference and the packer (packed.cpp)
// read them.
//
// Inline for the scalar kernels; not for AVX2 translation units (see fp16.h for why).
#pragma once

#include "drivers/llm/quant/block_formats.h"

namespace icam::llm {

// Element l (0..31) of sub-block s (0..7), 0..15: sub-block 2c is the low nibbles of the 32
// bytes of chunk c, 2c + 1 their high nibbles.
inline int q4_k_code(const BlockQ4_K& block, int s, int l) {
  const uint8_t byte = block.qs[32 * (s / 2) + l];
  return s % 2 == 0 ? byte & 15 : byte >> 4;
}

}  // namespace icam::llm
