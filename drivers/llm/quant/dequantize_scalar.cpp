// Scalar dequantizers for every format: the definition of what each block means.
//
// Products are formed in the order scale * code (one rounding each) so that the AVX2 dequantizers,
// which do the same with vector multiplies, give the same bits.
#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/fp16.h"
#include "drivers/llm/quant/k_scales.h"
#include "drivers/llm/quant/kernels.h"

namespace icam::llm::scalar {

void dequantize_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_f16(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = detail::fp16_to_f32(in[i]);
}

void dequantize_bf16(const void* src, float* dst, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = detail::bf16_to_f32(in[i]);
}

void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / kBlock32; ++b, dst += kBlock32) {
    const float d = detail::fp16_to_f32(blocks[b].d);
    for (int j = 0; j < kBlock32; ++j) dst[j] = d * static_cast<float>(blocks[b].qs[j]);
  }
}

void dequantize_q5_0(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < n / kBlock32; ++b, dst += kBlock32) {
    const BlockQ5_0& block = blocks[b];
    const float d = detail::fp16_to_f32(block.d);
    uint32_t high;
    std::memcpy(&high, block.qh, sizeof high);
    for (int j = 0; j < 16; ++j) {
      const int lo = (block.qs[j] & 15) | static_cast<int>(((high >> j) & 1) << 4);
      const int hi = (block.qs[j] >> 4) | static_cast<int>(((high >> (j + 16)) & 1) << 4);
      dst[j] = d * static_cast<float>(lo - 16);
      dst[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < n / kBlock32; ++b, dst += kBlock32) {
    const float d = detail::fp16_to_f32(blocks[b].d);
    for (int j = 0; j < 16; ++j) {
      dst[j] = d * static_cast<float>((blocks[b].qs[j] & 15) - 8);
      dst[j + 16] = d * static_cast<float>((blocks[b].qs[j] >> 4) - 8);
    }
  }
}

void dequantize_q4_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < n / kBlock256; ++b) {
    const BlockQ4_K& block = blocks[b];
    const float d = detail::fp16_to_f32(block.d);
    const float dmin = detail::fp16_to_f32(block.dmin);
    uint8_t scales[8], mins[8];
    unpack_k_scales(block.scales, scales, mins);
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = block.qs + 32 * chunk;
      const float d_lo = d * scales[2 * chunk], m_lo = dmin * mins[2 * chunk];
      const float d_hi = d * scales[2 * chunk + 1], m_hi = dmin * mins[2 * chunk + 1];
      for (int l = 0; l < 32; ++l) {
        dst[l] = d_lo * static_cast<float>(q[l] & 15) - m_lo;
        dst[l + 32] = d_hi * static_cast<float>(q[l] >> 4) - m_hi;
      }
      dst += 64;
    }
  }
}

void dequantize_q5_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5_K*>(src);
  for (int64_t b = 0; b < n / kBlock256; ++b) {
    const BlockQ5_K& block = blocks[b];
    const float d = detail::fp16_to_f32(block.d);
    const float dmin = detail::fp16_to_f32(block.dmin);
    uint8_t scales[8], mins[8];
    unpack_k_scales(block.scales, scales, mins);
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = block.qs + 32 * chunk;
      const int bit_lo = 2 * chunk, bit_hi = 2 * chunk + 1;
      const float d_lo = d * scales[bit_lo], m_lo = dmin * mins[bit_lo];
      const float d_hi = d * scales[bit_hi], m_hi = dmin * mins[bit_hi];
      for (int l = 0; l < 32; ++l) {
        const int lo = (q[l] & 15) | (((block.qh[l] >> bit_lo) & 1) << 4);
        const int hi = (q[l] >> 4) | (((block.qh[l] >> bit_hi) & 1) << 4);
        dst[l] = d_lo * static_cast<float>(lo) - m_lo;
        dst[l + 32] = d_hi * static_cast<float>(hi) - m_hi;
      }
      dst += 64;
    }
  }
}

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < n / kBlock256; ++b) {
    const BlockQ6_K& block = blocks[b];
    const float d = detail::fp16_to_f32(block.d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = block.ql + 64 * half;
      const uint8_t* qh = block.qh + 32 * half;
      const int8_t* sc = block.scales + 8 * half;
      for (int l = 0; l < 32; ++l) {
        const int group = l / 16;
        const int q0 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        dst[l] = d * static_cast<float>(sc[group] * q0);
        dst[l + 32] = d * static_cast<float>(sc[group + 2] * q1);
        dst[l + 64] = d * static_cast<float>(sc[group + 4] * q2);
        dst[l + 96] = d * static_cast<float>(sc[group + 6] * q3);
      }
      dst += 128;
    }
  }
}

void dequantize_q8_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ8_K*>(src);
  for (int64_t b = 0; b < n / kBlock256; ++b, dst += kBlock256) {
    for (int j = 0; j < kBlock256; ++j) dst[j] = blocks[b].d * static_cast<float>(blocks[b].qs[j]);
  }
}

}  // namespace icam::llm::scalar
