// Device functions that read the GGUF block layouts (drivers/llm/quant/block_formats.h, byte for
// byte) and turn 32 consecutive weights of a row into floats. Every quantized format is handled
// in chunks of 32: a Q*_0 block, a 32-weight sub-block of Q4_K/Q5_K, or two 16-weight sub-blocks
// of Q6_K. Products are formed as scale * code like the CPU's scalar dequantizers (nvcc may fuse
// a multiply and a subtraction into one FMA, so results can differ from the CPU in the last bit).
//
// Blocks are 2-byte aligned at best (Q5_0 is 22 bytes), so multi-byte fields are read as bytes
// or 16-bit halves, never wider.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "gpu/weight_format.h"

namespace icam::gpu::detail {

__device__ __forceinline__ float half_bits_to_float(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}
__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}

template <WeightFormat F>
__device__ __forceinline__ constexpr bool is_float_format() {
  return F == WeightFormat::F32 || F == WeightFormat::F16 || F == WeightFormat::BF16;
}

// Element k of a row of a float format.
template <WeightFormat F>
__device__ __forceinline__ float load_float_element(const uint8_t* row, int64_t k) {
  if constexpr (F == WeightFormat::F32) {
    return reinterpret_cast<const float*>(row)[k];
  } else if constexpr (F == WeightFormat::F16) {
    return half_bits_to_float(reinterpret_cast<const uint16_t*>(row)[k]);
  } else {
    return bf16_bits_to_float(reinterpret_cast<const uint16_t*>(row)[k]);
  }
}

// Weights [32c, 32c + 32) of a quantized row into v.
template <WeightFormat F>
__device__ __forceinline__ void dequantize_chunk(const uint8_t* row, int64_t c, float v[32]) {
  if constexpr (F == WeightFormat::Q8_0) {
    const uint8_t* b = row + c * 34;
    const float d = half_bits_to_float(load_u16(b));
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = d * static_cast<float>(qs[j]);
  } else if constexpr (F == WeightFormat::Q4_0) {
    const uint8_t* b = row + c * 18;
    const float d = half_bits_to_float(load_u16(b));
    const uint8_t* qs = b + 2;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      v[j] = d * static_cast<float>((qs[j] & 15) - 8);
      v[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  } else if constexpr (F == WeightFormat::Q5_0) {
    const uint8_t* b = row + c * 22;
    const float d = half_bits_to_float(load_u16(b));
    const uint32_t high = static_cast<uint32_t>(b[2]) | (static_cast<uint32_t>(b[3]) << 8) |
                          (static_cast<uint32_t>(b[4]) << 16) | (static_cast<uint32_t>(b[5]) << 24);
    const uint8_t* qs = b + 6;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 15) | static_cast<int>(((high >> j) & 1) << 4);
      const int hi = (qs[j] >> 4) | static_cast<int>(((high >> (j + 16)) & 1) << 4);
      v[j] = d * static_cast<float>(lo - 16);
      v[j + 16] = d * static_cast<float>(hi - 16);
    }
  } else if constexpr (F == WeightFormat::Q4_K || F == WeightFormat::Q5_K) {
    constexpr int kBytes = F == WeightFormat::Q4_K ? 144 : 176;
    const uint8_t* b = row + (c >> 3) * kBytes;
    const int s = static_cast<int>(c & 7);  // sub-block of 32
    const float d = half_bits_to_float(load_u16(b));
    const float dmin = half_bits_to_float(load_u16(b + 2));
    const uint8_t* sc = b + 4;  // the 12-byte packing of drivers/llm/quant/k_scales.h
    int scale, min;
    if (s < 4) {
      scale = sc[s] & 63;
      min = sc[s + 4] & 63;
    } else {
      scale = (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
      min = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
    }
    const float ds = d * static_cast<float>(scale);
    const float ms = dmin * static_cast<float>(min);
    const int shift = (s & 1) * 4;
    if constexpr (F == WeightFormat::Q4_K) {
      const uint8_t* q = b + 16 + 32 * (s >> 1);
#pragma unroll
      for (int l = 0; l < 32; ++l) v[l] = ds * static_cast<float>((q[l] >> shift) & 15) - ms;
    } else {
      const uint8_t* qh = b + 16;
      const uint8_t* q = b + 48 + 32 * (s >> 1);
#pragma unroll
      for (int l = 0; l < 32; ++l) {
        const int code = ((q[l] >> shift) & 15) | (((qh[l] >> s) & 1) << 4);
        v[l] = ds * static_cast<float>(code) - ms;
      }
    }
  } else if constexpr (F == WeightFormat::Q6_K) {
    const uint8_t* b = row + (c >> 3) * 210;
    const int s = static_cast<int>(c & 7);
    const int half = s >> 2;  // which 128-weight half of the block
    const int j = s & 3;      // which 32-weight quarter of the half
    const uint8_t* ql = b + 64 * half + (j & 1) * 32;
    const uint8_t* qh = b + 128 + 32 * half;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * half + 2 * j;
    const float d = half_bits_to_float(load_u16(b + 208));
    const int nibble_shift = j >= 2 ? 4 : 0;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int q = (((ql[l] >> nibble_shift) & 15) | (((qh[l] >> (2 * j)) & 3) << 4)) - 32;
      v[l] = d * static_cast<float>(sc[l / 16] * q);
    }
  } else {
    // Float formats: 32 consecutive elements.
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = load_float_element<F>(row, c * 32 + l);
  }
}

}  // namespace icam::gpu::detail
