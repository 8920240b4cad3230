// The per-format kernels behind quant.h, one set per instruction set. Internal to icam_llm_quant
// (and its tests, which compare the sets against each other).
//
// scalar:: is the portable reference and the fallback on CPUs without AVX2. avx2:: is compiled
// with AVX2/FMA/F16C flags and may only be called when icam::use_avx2() is true. Both sets give
// bit-identical activation quantization and dequantization, and bit-identical quantized dot
// products (the numerics below); the float formats' dot products agree to rounding.
//
// This header declares functions and types only: it is safe to include from AVX2 translation units.
#pragma once

#include <cstddef>
#include <cstdint>

namespace icam::llm {

// Converts n floats (whole blocks) to a format.
using QuantizeFn = void (*)(const float* src, void* dst, int64_t n);
// Converts n elements (whole blocks) of a format to floats.
using DequantizeFn = void (*)(const void* src, float* dst, int64_t n);
// The dot products of one weight row of n elements with nx activation rows (1 <= nx <=
// kMaxDotCols) in the weight format's activation layout, activation row c starting at
// x + c * x_stride bytes: out[c] = sum_k W[k] * X_c[k]. The weight row is unpacked once for all
// nx rows, which is what makes batched matrix products cheaper than repeated ones. A column's
// result does not depend on nx.
using DotFn = void (*)(int64_t n, const void* w, const void* x, size_t x_stride, int nx,
                       float* out);

inline constexpr int kMaxDotCols = 4;

// The Q8_0 activation row, as the Q4_0/Q5_0/Q8_0 dot products read it. It holds exactly what a
// row of ggml Q8_0 blocks holds (codes, and scales rounded to fp16) but planar, for n elements
// in nb = n / 32 blocks:
//   int8_t codes[nb * 32];   // element order
//   float  scale[nb];        // the block's fp16 scale, widened
//   int32_t code_sum[nb];    // the sum of the block's codes
// Float scales save an fp16 conversion per block and column. The code sums let kernels multiply
// unsigned bytes (vpmaddubsw, vpdpbusd): the 4- and 5-bit formats' codes as stored (0..15,
// 0..31) and the 512-bit kernels' Q8_0 codes biased by +128, then subtract offset * code_sum
// once per block, which gives exactly the integer of the signed product.
// Its size is activation_row_bytes(ActivationFormat::q8_0, n) (kernel_table.h): 40 bytes a block.
//
// Numerics of the quantized formats, the same in every set and kernel, so that all of them
// (scalar, AVX2 rows, packed, 512-bit) give bit-identical results. Per block b (32 elements;
// for the K-quants a super-block of 256), in block order, from acc = 0:
//   Q8_0, Q5_0, Q4_0: s_b = the exact integer dot product of the signed codes;
//                     acc = fma(d_w[b] * d_x[b], float(s_b), acc)
//   Q6_K:             s_b = sum over the 16 groups of scale_g * (signed codes . activations)_g;
//                     acc = fma(d_w[b] * d_x[b], float(s_b), acc)
//   Q4_K, Q5_K:       s_b = sum over the 8 sub-blocks of scale_s * (codes . activations)_s,
//                     m_b = sum_s min_s * (the activations' sum over s);
//                     acc = fma(d_w[b] * d_x[b], float(s_b), acc), then
//                     acc = fma(-(dmin_w[b] * d_x[b]), float(m_b), acc)
// One or two float operations per block and row (not per 4-element chunk) is what lets the
// packed kernels' integer units, not their float ones, set the pace.

// The portable reference set.
namespace scalar {
// Activation formats.
void quantize_q8_0_activations(const float* src, void* dst, int64_t n);
void dequantize_q8_0_activations(const void* src, float* dst, int64_t n);
void quantize_q8_k(const float* src, void* dst, int64_t n);
void dequantize_q8_k(const void* src, float* dst, int64_t n);
void quantize_f16(const float* src, void* dst, int64_t n);
void quantize_bf16(const float* src, void* dst, int64_t n);
// Weight formats.
void quantize_q8_0(const float* src, void* dst, int64_t n);
void dequantize_f32(const void* src, float* dst, int64_t n);
void dequantize_f16(const void* src, float* dst, int64_t n);
void dequantize_bf16(const void* src, float* dst, int64_t n);
void dequantize_q8_0(const void* src, float* dst, int64_t n);
void dequantize_q5_0(const void* src, float* dst, int64_t n);
void dequantize_q4_0(const void* src, float* dst, int64_t n);
void dequantize_q4_k(const void* src, float* dst, int64_t n);
void dequantize_q5_k(const void* src, float* dst, int64_t n);
void dequantize_q6_k(const void* src, float* dst, int64_t n);
// Dot products: F32/F16/BF16 weights against activations of the same type, Q8_0/Q5_0/Q4_0
// against Q8_0 activation rows, the K-quants against Q8_K.
void dot_f32(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_f16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_bf16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q8_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q5_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q4_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q4_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q5_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q6_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
}  // namespace scalar

// The AVX2/FMA/F16C set. Formats the engine rarely dequantizes have no AVX2 dequantizer (embedding
// rows are Q8_0, F16 or F32); the scalar one serves both sets.
namespace avx2 {
void quantize_q8_0_activations(const float* src, void* dst, int64_t n);
void quantize_q8_k(const float* src, void* dst, int64_t n);
void quantize_f16(const float* src, void* dst, int64_t n);
void quantize_bf16(const float* src, void* dst, int64_t n);
void dequantize_f32(const void* src, float* dst, int64_t n);
void dequantize_f16(const void* src, float* dst, int64_t n);
void dequantize_bf16(const void* src, float* dst, int64_t n);
void dequantize_q8_0(const void* src, float* dst, int64_t n);
void dot_f32(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_f16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_bf16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q8_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q5_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q4_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q4_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q5_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
void dot_q6_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
}  // namespace avx2

}  // namespace icam::llm
