// The public fp16/bf16 conversions of quant.h, out of line so that callers compiled with AVX2
// flags (the engine's SIMD files) never instantiate their own copies of the inline versions.
#include "drivers/llm/quant/fp16.h"

#include "drivers/llm/quant/quant.h"

namespace icam::llm {

float fp16_to_f32(uint16_t h) {
  return detail::fp16_to_f32(h);
}
uint16_t f32_to_fp16(float f) {
  return detail::f32_to_fp16(f);
}
float bf16_to_f32(uint16_t h) {
  return detail::bf16_to_f32(h);
}
uint16_t f32_to_bf16(float f) {
  return detail::f32_to_bf16(f);
}

}  // namespace icam::llm
