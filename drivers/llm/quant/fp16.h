// Conversions between float and the 16-bit float formats stored in GGUF files: IEEE half (fp16)
// and bfloat16. All conversions are exact bit manipulations with round-to-nearest-even, so they
// give the same bits as the F16C instructions (vcvtps2ph with rounding mode 0, vcvtph2ps) used by
// the AVX2 kernels; the quant tests check this over every fp16 value.
//
// Internal to icam_llm_quant: these inline versions are for its scalar kernels. Other code uses the
// out-of-line fp16_to_f32 & co. declared in quant.h. This header must not be included from a
// translation unit compiled with AVX2 flags: an inline function compiled there could be the copy
// the linker keeps, and scalar code on a CPU without AVX2 would then run AVX2 instructions.
#pragma once

#include <bit>
#include <cstdint>

namespace icam::llm::detail {

// Exact for every input; NaNs stay NaN (quieted) with their payload's top bits kept.
inline float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) {
    const uint32_t quiet = mantissa != 0 ? 0x00400000u : 0u;
    return std::bit_cast<float>(sign | 0x7f800000u | quiet | (mantissa << 13));
  }
  if (exponent != 0) {
    // Rebias the exponent from 15 to 127.
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }
  // Zero or subnormal: mantissa * 2^-24 is exact in float.
  const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
  return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
}

// Round-to-nearest-even; values at or beyond 65520 in magnitude become infinity.
inline uint16_t f32_to_fp16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: keep it quiet and keep the payload's top bits
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520
  if (magnitude >= 0x38800000u) {  // normal in fp16 (>= 2^-14)
    const uint32_t rebiased = magnitude - (112u << 23);
    const uint32_t round = 0xfffu + ((rebiased >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rebiased + round) >> 13));
  }
  // Subnormal in fp16: adding 0.5f, whose ulp is 2^-24, rounds the value to a multiple of 2^-24
  // (nearest-even, the default floating-point mode); the low bits then count those multiples.
  const float shifted = std::bit_cast<float>(magnitude) + 0.5f;
  return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(shifted) - 0x3f000000u));
}

inline float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// Round-to-nearest-even; NaNs stay NaN (quieted).
inline uint16_t f32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace icam::llm::detail
