// The element-wise and attention operations of a transformer step on the CPU. These are the
// reference definitions: each CUDA kernel in gpu/ is tested against its twin here.
#pragma once

#include <cstdint>

#include "drivers/llm/engine/model_config.h"

namespace icam::llm::ops {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]. The sum of squares is accumulated in double.
void rms_norm(const float* x, const float* weight, float* out, int n, float eps);

// Rotates `n_heads` heads of `head_dim` values at position `pos` in place. Frequencies follow
// theta_i = pos * scale * base^(-2i/head_dim) / factor_i, computed by repeated multiplication in
// float; `freq_factors` (head_dim/2 values, Llama 3.1's rope_freqs) may be null for all ones.
void rope(float* x, int n_heads, int head_dim, int pos, float base, float scale, RopeStyle style,
          const float* freq_factors = nullptr);

// rope in two steps, so that a step's rows compute their angles once for all layers: the
// head_dim / 2 cosines and sines of position `pos`, then their rotation of `n_heads` heads.
// rope_apply(x, ..., cos, sin) after rope_angles(pos, ..., cos, sin) is exactly rope(x, ..., pos).
void rope_angles(int head_dim, int pos, float base, float scale, const float* freq_factors,
                 float* cos_out, float* sin_out);
void rope_apply(float* x, int n_heads, int head_dim, const float* cos_v, const float* sin_v,
                RopeStyle style);

// a[i] = act(gate[i]) * up[i] for the model's gated FFN. With AVX2, eight at a time through a
// vector e^x (ops_avx2.cpp), within a few ulp of gelu_tanh and silu below (the definitions, and
// the path on other CPUs); an element's result depends only on its own inputs, never on n or
// its position in the range.
void gated_activation(const float* gate, const float* up, float* out, int n, FfnActivation act);

float gelu_tanh(float x);
float silu(float x);

// Converts floats to IEEE halves and back (round to nearest even).
void f32_to_f16(const float* in, uint16_t* out, int n);

// sum_i q[i] * half_to_float(k[i])
float dot_f16(const float* q, const uint16_t* k, int n);
// out[i] += w * half_to_float(v[i])
void axpy_f16(float w, const uint16_t* v, float* out, int n);

// Attention over a sequence's keys and values, rows of n halves wherever their pages put them,
// for `heads` query heads that share those rows (grouped-query attention; 1 for one head):
// dot_f16_rows: out[h * out_stride + j] = dot_f16(q + h * q_stride, rows[j], n) for j < count;
// weighted_sum_f16: out + h * out_stride = sum_j w[h * w_stride + j] * rows[j] (zeroed, then
// axpy_f16 row after row). Bit-identical to those loops, head by head; with AVX-512 or AVX2 (n a
// multiple of 16) in fewer instructions and memory reads: each row read and converted once for
// all heads (with AVX-512, up to four at a time, the weighted sum's outputs held in registers).
void dot_f16_rows(const float* q, int heads, int64_t q_stride, const uint16_t* const* rows,
                  int count, int n, float* out, int64_t out_stride);
void weighted_sum_f16(const float* w, int heads, int64_t w_stride, const uint16_t* const* rows,
                      int count, int n, float* out, int64_t out_stride);

// The AVX2 versions of the two above (n a multiple of 16; only where use_avx2()), which a CPU
// with AVX-512 never dispatches to: declared here so that the tests reach them there too.
void dot_f16_rows_avx2(const float* q, int heads, int64_t q_stride, const uint16_t* const* rows,
                       int count, int n, float* out, int64_t out_stride);
void weighted_sum_f16_avx2(const float* w, int heads, int64_t w_stride, const uint16_t* const* rows,
                           int count, int n, float* out, int64_t out_stride);

}  // namespace icam::llm::ops
