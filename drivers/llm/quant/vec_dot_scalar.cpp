// Scalar dot products of one weight row with nx activation rows, the reference for the AVX2 ones.
//
// As in ggml, quantized dots are exact integer sums within a block (a super-block for the
// K-quants), multiplied by the product of the two block scales and summed in float. The float
// steps are fixed (kernels.h: fused multiply-adds, block after block), so every other kernel
// gives these results bit for bit.
#include <cmath>
#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/fp16.h"
#include "drivers/llm/quant/k_codes.h"
#include "drivers/llm/quant/k_scales.h"
#include "drivers/llm/quant/kernels.h"

namespace icam::llm::scalar {
namespace {

template <typename Block>
const Block* activation_row(const void* x, size_t x_stride, int c) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(x) + c * x_stride);
}

// Float formats: products of float-converted values, accumulated in double (the reference is
// meant to be accurate, not fast).
template <typename Element, float (*to_f32)(Element)>
void dot_float(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  const auto* row = static_cast<const Element*>(w);
  for (int c = 0; c < nx; ++c) {
    const auto* act = activation_row<Element>(x, x_stride, c);
    double sum = 0.0;
    for (int64_t k = 0; k < n; ++k) {
      sum += static_cast<double>(to_f32(row[k])) * static_cast<double>(to_f32(act[k]));
    }
    out[c] = static_cast<float>(sum);
  }
}

float identity(float v) {
  return v;
}

// The integer dot product of 32 codes (already offset to signed values) with 32 Q8_0 codes.
int dot32(const int* q, const int8_t* a) {
  int sum = 0;
  for (int j = 0; j < kBlock32; ++j) sum += q[j] * a[j];
  return sum;
}

// 32-element formats against Q8_0 activation rows (kernels.h); `unpack` writes a block's 32
// signed codes.
template <typename Block, void (*unpack)(const Block&, int*)>
void dot_blocks32(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  const auto* row = static_cast<const Block*>(w);
  const int64_t blocks = n / kBlock32;
  for (int c = 0; c < nx; ++c) {
    const auto* codes = static_cast<const int8_t*>(x) + c * x_stride;
    const auto* scales = reinterpret_cast<const float*>(codes + blocks * kBlock32);
    float sum = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) {
      int q[kBlock32];
      unpack(row[b], q);
      const float d = detail::fp16_to_f32(row[b].d) * scales[b];
      sum = std::fma(d, static_cast<float>(dot32(q, codes + b * kBlock32)), sum);
    }
    out[c] = sum;
  }
}

void unpack_q8_0(const BlockQ8_0& block, int* q) {
  for (int j = 0; j < kBlock32; ++j) q[j] = block.qs[j];
}

void unpack_q5_0(const BlockQ5_0& block, int* q) {
  uint32_t high;
  std::memcpy(&high, block.qh, sizeof high);
  for (int j = 0; j < 16; ++j) {
    q[j] = ((block.qs[j] & 15) | static_cast<int>(((high >> j) & 1) << 4)) - 16;
    q[j + 16] = ((block.qs[j] >> 4) | static_cast<int>(((high >> (j + 16)) & 1) << 4)) - 16;
  }
}

void unpack_q4_0(const BlockQ4_0& block, int* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = (block.qs[j] & 15) - 8;
    q[j + 16] = (block.qs[j] >> 4) - 8;
  }
}

// Q4_K and Q5_K against Q8_K: x = d * scale * q - dmin * min per sub-block of 32, so
// sum = d_w d_x * sum_s scale_s (q . a)_s  -  dmin_w d_x * sum_s min_s * (sum of a over s),
// the second sum taken from the activation's bsums.
template <typename Block, int (*code)(const Block&, int sub_block, int l)>
void dot_k_scale_min(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  const auto* row = static_cast<const Block*>(w);
  const int64_t blocks = n / kBlock256;
  for (int c = 0; c < nx; ++c) {
    const auto* act = activation_row<BlockQ8_K>(x, x_stride, c);
    float sum = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) {
      const Block& block = row[b];
      const BlockQ8_K& a = act[b];
      uint8_t scales[8], mins[8];
      unpack_k_scales(block.scales, scales, mins);
      int dot = 0;
      int offset = 0;
      for (int s = 0; s < 8; ++s) {
        int sub = 0;
        for (int l = 0; l < 32; ++l) sub += code(block, s, l) * a.qs[32 * s + l];
        dot += scales[s] * sub;
        offset += mins[s] * (a.bsums[2 * s] + a.bsums[2 * s + 1]);
      }
      const float d = detail::fp16_to_f32(block.d) * a.d;
      const float dmin = detail::fp16_to_f32(block.dmin) * a.d;
      sum = std::fma(d, static_cast<float>(dot), sum);
      sum = std::fma(-dmin, static_cast<float>(offset), sum);
    }
    out[c] = sum;
  }
}

// Q5_K: Q4_K's nibbles (k_codes.h) with bit s of qh[l] as the fifth bit.
int code_q5_k(const BlockQ5_K& block, int s, int l) {
  const uint8_t byte = block.qs[32 * (s / 2) + l];
  const int low = s % 2 == 0 ? byte & 15 : byte >> 4;
  return low | (((block.qh[l] >> s) & 1) << 4);
}

}  // namespace

void dot_f32(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_float<float, identity>(n, w, x, x_stride, nx, out);
}

void dot_f16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_float<uint16_t, detail::fp16_to_f32>(n, w, x, x_stride, nx, out);
}

void dot_bf16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_float<uint16_t, detail::bf16_to_f32>(n, w, x, x_stride, nx, out);
}

void dot_q8_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_blocks32<BlockQ8_0, unpack_q8_0>(n, w, x, x_stride, nx, out);
}

void dot_q5_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_blocks32<BlockQ5_0, unpack_q5_0>(n, w, x, x_stride, nx, out);
}

void dot_q4_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_blocks32<BlockQ4_0, unpack_q4_0>(n, w, x, x_stride, nx, out);
}

void dot_q4_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_k_scale_min<BlockQ4_K, q4_k_code>(n, w, x, x_stride, nx, out);
}

void dot_q5_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  dot_k_scale_min<BlockQ5_K, code_q5_k>(n, w, x, x_stride, nx, out);
}

// Q6_K against Q8_K: 16 sub-blocks of 16 with signed int8 scales and codes q - 32.
void dot_q6_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  const auto* row = static_cast<const BlockQ6_K*>(w);
  const int64_t blocks = n / kBlock256;
  for (int c = 0; c < nx; ++c) {
    const auto* act = activation_row<BlockQ8_K>(x, x_stride, c);
    float sum = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) {
      const BlockQ6_K& block = row[b];
      const BlockQ8_K& a = act[b];
      int dot = 0;
      for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = block.ql + 64 * half;
        const uint8_t* qh = block.qh + 32 * half;
        const int8_t* sc = block.scales + 8 * half;
        const int8_t* qa = a.qs + 128 * half;
        // Quarter r of the half (32 elements) uses scales 2r and 2r + 1.
        int sub[8] = {};
        for (int l = 0; l < 32; ++l) {
          const int group = l / 16;
          sub[group] += (((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32) * qa[l];
          sub[group + 2] += (((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32) * qa[l + 32];
          sub[group + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * qa[l + 64];
          sub[group + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * qa[l + 96];
        }
        for (int s = 0; s < 8; ++s) dot += sc[s] * sub[s];
      }
      const float d = detail::fp16_to_f32(block.d) * a.d;
      sum = std::fma(d, static_cast<float>(dot), sum);
    }
    out[c] = sum;
  }
}

}  // namespace icam::llm::scalar
