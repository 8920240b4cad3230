#include "drivers/llm/engine/ops.h"

#include <cmath>

#include "common/cpu_features.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm::ops {

// AVX2 versions live in ops_avx2.cpp, compiled with AVX2 flags and used when the CPU has them.
float dot_f16_avx2(const float* q, const uint16_t* k, int n);
void axpy_f16_avx2(float w, const uint16_t* v, float* out, int n);
void f32_to_f16_avx2(const float* in, uint16_t* out, int n);
void gated_gelu_avx2(const float* gate, const float* up, float* out, int n);
void gated_silu_avx2(const float* gate, const float* up, float* out, int n);
// (dot_f16_rows_avx2 and weighted_sum_f16_avx2 are declared in ops.h, for their tests.)
// AVX-512 versions in ops_avx512.cpp, for n a multiple of 16.
void dot_f16_rows_avx512(const float* q, int heads, int64_t q_stride, const uint16_t* const* rows,
                         int count, int n, float* out, int64_t out_stride);
void weighted_sum_f16_avx512(const float* w, int heads, int64_t w_stride,
                             const uint16_t* const* rows, int count, int n, float* out,
                             int64_t out_stride);

void rms_norm(const float* x, const float* weight, float* out, int n, float eps) {
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void rope_angles(int head_dim, int pos, float base, float scale, const float* freq_factors,
                 float* cos_out, float* sin_out) {
  const int half = head_dim / 2;
  const float theta_scale = std::pow(base, -2.0f / static_cast<float>(head_dim));
  float theta = static_cast<float>(pos) * scale;
  for (int i = 0; i < half; ++i) {
    const float angle = freq_factors ? theta / freq_factors[i] : theta;
    cos_out[i] = std::cos(angle);
    sin_out[i] = std::sin(angle);
    theta *= theta_scale;
  }
}

void rope_apply(float* x, int n_heads, int head_dim, const float* cos_v, const float* sin_v,
                RopeStyle style) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const int a = style == RopeStyle::halves ? i : 2 * i;
      const int b = style == RopeStyle::halves ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * cos_v[i] - x1 * sin_v[i];
      v[b] = x0 * sin_v[i] + x1 * cos_v[i];
    }
  }
}

void rope(float* x, int n_heads, int head_dim, int pos, float base, float scale, RopeStyle style,
          const float* freq_factors) {
  // cos/sin for each pair, shared by all heads.
  float cos_v[2048], sin_v[2048];
  rope_angles(head_dim, pos, base, scale, freq_factors, cos_v, sin_v);
  rope_apply(x, n_heads, head_dim, cos_v, sin_v, style);
}

// 0.5 x (1 + tanh(u)) written as x / (1 + e^(-2u)), the same function: 1 + tanh(u) cancels for
// negative x (down to -0 where the value is still -1e-30), the quotient keeps its precision.
float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  constexpr float kCoef = 0.044715f;
  const float u = kSqrt2OverPi * (x + kCoef * x * x * x);
  return x / (1.0f + std::exp(-2.0f * u));
}

float silu(float x) {
  return x / (1.0f + std::exp(-x));
}

void gated_activation(const float* gate, const float* up, float* out, int n, FfnActivation act) {
  if (use_avx2()) {
    return act == FfnActivation::gelu_tanh ? gated_gelu_avx2(gate, up, out, n)
                                           : gated_silu_avx2(gate, up, out, n);
  }
  if (act == FfnActivation::gelu_tanh) {
    for (int i = 0; i < n; ++i) out[i] = gelu_tanh(gate[i]) * up[i];
  } else {
    for (int i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
  }
}

void f32_to_f16(const float* in, uint16_t* out, int n) {
  if (use_avx2()) return f32_to_f16_avx2(in, out, n);
  for (int i = 0; i < n; ++i) out[i] = f32_to_fp16(in[i]);
}

float dot_f16(const float* q, const uint16_t* k, int n) {
  if (use_avx2()) return dot_f16_avx2(q, k, n);
  float sum = 0;
  for (int i = 0; i < n; ++i) sum += q[i] * fp16_to_f32(k[i]);
  return sum;
}

void axpy_f16(float w, const uint16_t* v, float* out, int n) {
  if (use_avx2()) return axpy_f16_avx2(w, v, out, n);
  for (int i = 0; i < n; ++i) out[i] += w * fp16_to_f32(v[i]);
}

void dot_f16_rows(const float* q, int heads, int64_t q_stride, const uint16_t* const* rows,
                  int count, int n, float* out, int64_t out_stride) {
  if (use_avx512() && n % 16 == 0)
    return dot_f16_rows_avx512(q, heads, q_stride, rows, count, n, out, out_stride);
  if (use_avx2() && n % 16 == 0)
    return dot_f16_rows_avx2(q, heads, q_stride, rows, count, n, out, out_stride);
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < count; ++j) out[h * out_stride + j] = dot_f16(q + h * q_stride, rows[j], n);
}

void weighted_sum_f16(const float* w, int heads, int64_t w_stride, const uint16_t* const* rows,
                      int count, int n, float* out, int64_t out_stride) {
  if (use_avx512() && n % 16 == 0)
    return weighted_sum_f16_avx512(w, heads, w_stride, rows, count, n, out, out_stride);
  if (use_avx2() && n % 16 == 0)
    return weighted_sum_f16_avx2(w, heads, w_stride, rows, count, n, out, out_stride);
  for (int h = 0; h < heads; ++h) {
    float* o = out + h * out_stride;
    for (int i = 0; i < n; ++i) o[i] = 0.0f;
    for (int j = 0; j < count; ++j) axpy_f16(w[h * w_stride + j], rows[j], o, n);
  }
}

}  // namespace icam::llm::ops
