// Scalar activation quantizers: the layouts matmul converts its float input to before the dot
// products (Q8_0 rows, Q8_K, F16, BF16), plus the Q8_0 weight quantizer, which rounds exactly as
// the Q8_0 activation quantizer does.
//
// The arithmetic is chosen so that the AVX2 versions give the same bits: the scale's reciprocal is
// computed once per block as 127 / amax (not 1 / d), each element is multiplied by it once and
// rounded to nearest-even.
#include <cmath>
#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/fp16.h"
#include "drivers/llm/quant/kernels.h"

namespace icam::llm::scalar {
namespace {

// Round-to-nearest-even for |v| < 2^22: adding 1.5 * 2^23 leaves the integer in the low mantissa
// bits. Used instead of std::nearbyint, which is a library call without SSE4.1.
int round_even(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return bits - 0x4b400000;
}

float max_abs(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  return amax;
}

// One block of 32 as Q8_0: returns the fp16 scale; writes the codes and their sum.
uint16_t quantize_block32(const float* x, int8_t* codes, int* sum) {
  const float amax = max_abs(x, kBlock32);
  const float inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
  *sum = 0;
  for (int j = 0; j < kBlock32; ++j) {
    codes[j] = static_cast<int8_t>(round_even(x[j] * inverse));
    *sum += codes[j];
  }
  return detail::f32_to_fp16(amax / 127.0f);
}

}  // namespace

void quantize_q8_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kBlock32; ++b) {
    int sum;
    blocks[b].d = quantize_block32(src + b * kBlock32, blocks[b].qs, &sum);
  }
}

void quantize_q8_0_activations(const float* src, void* dst, int64_t n) {
  const int64_t blocks = n / kBlock32;
  auto* codes = static_cast<int8_t*>(dst);
  auto* scales = reinterpret_cast<float*>(codes + blocks * kBlock32);
  auto* code_sums = reinterpret_cast<int32_t*>(scales + blocks);
  for (int64_t b = 0; b < blocks; ++b) {
    int sum;
    const uint16_t d = quantize_block32(src + b * kBlock32, codes + b * kBlock32, &sum);
    scales[b] = detail::fp16_to_f32(d);
    code_sums[b] = sum;
  }
}

void dequantize_q8_0_activations(const void* src, float* dst, int64_t n) {
  const int64_t blocks = n / kBlock32;
  const auto* codes = static_cast<const int8_t*>(src);
  const auto* scales = reinterpret_cast<const float*>(codes + blocks * kBlock32);
  for (int64_t i = 0; i < n; ++i) dst[i] = scales[i / kBlock32] * static_cast<float>(codes[i]);
}

// Q8_K uses the positive scale 127 / amax where ggml uses -127 / (the element of largest
// magnitude); both give the same |d| and mirrored codes, hence the same products d_w * d_x * sum.
void quantize_q8_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / kBlock256; ++b) {
    const float* x = src + b * kBlock256;
    BlockQ8_K& out = blocks[b];
    const float amax = max_abs(x, kBlock256);
    if (amax == 0.0f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    const float inverse = 127.0f / amax;
    out.d = 1.0f / inverse;
    for (int j = 0; j < kBlock256; ++j) {
      const int q = round_even(x[j] * inverse);
      out.qs[j] = static_cast<int8_t>(q > 127 ? 127 : (q < -127 ? -127 : q));
    }
    for (int g = 0; g < kBlock256 / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += out.qs[16 * g + j];
      out.bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

void quantize_f16(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = detail::f32_to_fp16(src[i]);
}

void quantize_bf16(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = detail::f32_to_bf16(src[i]);
}

}  // namespace icam::llm::scalar
