// The 12-byte packing of the eight 6-bit scales and eight 6-bit mins of a Q4_K or Q5_K block.
//
// Bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 hold mins 0-3 likewise. Scales and mins
// 4-7 keep their low 4 bits in bytes 8-11 (scale in the low nibble, min in the high nibble) and
// their top 2 bits in the spare top bits of bytes 0-3 (scales) and 4-7 (mins).
//
// Inline for the scalar kernels; not for AVX2 translation units (see fp16.h for why).
#pragma once

#include <cstdint>

namespace icam::llm {

inline void unpack_k_scales(const uint8_t packed[12], uint8_t scales[8], uint8_t mins[8]) {
  for (int s = 0; s < 4; ++s) {
    scales[s] = packed[s] & 63;
    mins[s] = packed[s + 4] & 63;
    scales[s + 4] = static_cast<uint8_t>((packed[s + 8] & 15) | ((packed[s] >> 6) << 4));
    mins[s + 4] = static_cast<uint8_t>((packed[s + 8] >> 4) | ((packed[s + 4] >> 6) << 4));
  }
}

// scales and mins must be < 64.
inline void pack_k_scales(const uint8_t scales[8], const uint8_t mins[8], uint8_t packed[12]) {
  for (int s = 0; s < 4; ++s) {
    packed[s] = static_cast<uint8_t>((scales[s] & 63) | ((scales[s + 4] >> 4) << 6));
    packed[s + 4] = static_cast<uint8_t>((mins[s] & 63) | ((mins[s + 4] >> 4) << 6));
    packed[s + 8] = static_cast<uint8_t>((scales[s + 4] & 15) | ((mins[s + 4] & 15) << 4));
  }
}

}  // namespace icam::llm
