// AVX2/F16C versions of the half-precision attention helpers and the gated activations in
// ops.cpp. This file is compiled with -mavx2 -mfma -mf16c and only called when the CPU reports
// those features.
#include <immintrin.h>

#include <cstdint>

#include "drivers/llm/engine/head_blocks.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm::ops {

float dot_f16_avx2(const float* q, const uint16_t* k, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
    __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i + 8)));
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, acc1);
  }
  __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  float sum = _mm_cvtss_f32(lo);
  for (; i < n; ++i) sum += q[i] * fp16_to_f32(k[i]);
  return sum;
}

void axpy_f16_avx2(float w, const uint16_t* v, float* out, int n) {
  const __m256 wv = _mm256_set1_ps(w);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, x, _mm256_loadu_ps(out + i)));
  }
  for (; i < n; ++i) out[i] += w * fp16_to_f32(v[i]);
}

namespace {

__m256 load_halves8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// dot_f16_avx2's reduction of its two accumulators.
float reduce_pair(__m256 acc0, __m256 acc1) {
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

// H heads' dot products with rows [j, j + R), n % 16 == 0: each row's halves converted once for
// all heads, each (head, row) product in its own pair of accumulators exactly as dot_f16_avx2
// keeps them; R rows at a time so that the chains of multiply-adds run side by side.
template <int H, int R>
void dot_block(const float* q, int64_t q_stride, const uint16_t* const* rows, int j, int n,
               float* out, int64_t out_stride) {
  __m256 acc0[H][R], acc1[H][R];
  for (int h = 0; h < H; ++h)
    for (int r = 0; r < R; ++r) acc0[h][r] = acc1[h][r] = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    __m256 k0[R], k1[R];
    for (int r = 0; r < R; ++r) {
      k0[r] = load_halves8(rows[j + r] + i);
      k1[r] = load_halves8(rows[j + r] + i + 8);
    }
    for (int h = 0; h < H; ++h) {
      const __m256 q0 = _mm256_loadu_ps(q + h * q_stride + i);
      const __m256 q1 = _mm256_loadu_ps(q + h * q_stride + i + 8);
      for (int r = 0; r < R; ++r) {
        acc0[h][r] = _mm256_fmadd_ps(q0, k0[r], acc0[h][r]);
        acc1[h][r] = _mm256_fmadd_ps(q1, k1[r], acc1[h][r]);
      }
    }
  }
  for (int h = 0; h < H; ++h)
    for (int r = 0; r < R; ++r) out[h * out_stride + j + r] = reduce_pair(acc0[h][r], acc1[h][r]);
}

template <int H>
void dot_rows_heads(const float* q, int64_t q_stride, const uint16_t* const* rows, int count, int n,
                    float* out, int64_t out_stride) {
  constexpr int R = H == 1 ? 4 : H == 2 ? 2 : 1;  // at most 8 accumulators of the 16 registers
  int j = 0;
  for (; j + R <= count; j += R) dot_block<H, R>(q, q_stride, rows, j, n, out, out_stride);
  for (; j < count; ++j) dot_block<H, 1>(q, q_stride, rows, j, n, out, out_stride);
}

}  // namespace

void dot_f16_rows_avx2(const float* q, int heads, int64_t q_stride, const uint16_t* const* rows,
                       int count, int n, float* out, int64_t out_stride) {
  for_head_blocks(heads, [&]<int H>(int h) {
    dot_rows_heads<H>(q + h * q_stride, q_stride, rows, count, n, out + h * out_stride, out_stride);
  });
}

void weighted_sum_f16_avx2(const float* w, int heads, int64_t w_stride, const uint16_t* const* rows,
                           int count, int n, float* out, int64_t out_stride) {
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i) out[h * out_stride + i] = 0.0f;
  // Row by row, each row read and converted once for every head, eight values at a time; each
  // output gets one multiply-add per row in row order, through memory, as axpy_f16_avx2 does.
  for (int j = 0; j < count; ++j) {
    const uint16_t* v = rows[j];
    for (int i = 0; i < n; i += 8) {
      const __m256 x = load_halves8(v + i);
      for (int h = 0; h < heads; ++h) {
        float* o = out + h * out_stride + i;
        _mm256_storeu_ps(
            o, _mm256_fmadd_ps(_mm256_set1_ps(w[h * w_stride + j]), x, _mm256_loadu_ps(o)));
      }
    }
  }
}

void f32_to_f16_avx2(const float* in, uint16_t* out, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = f32_to_fp16(in[i]);
}

namespace {

// e^x for 8 floats, within 2 ulp of the exact value for x in [-87, 88]; 0 below and +infinity
// above (what the activations below need there: x / (1 + e^t) must go to x and to 0). The
// usual reduction: x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 split in two so that r is exact),
// e^r by a degree-6 polynomial (Cephes' expf coefficients), 2^n put into the exponent bits.
__m256 exp8(__m256 in) {
  const __m256 low = _mm256_set1_ps(-87.0f), high = _mm256_set1_ps(88.0f);
  const __m256 x = _mm256_min_ps(_mm256_max_ps(in, low), high);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
  const __m256 outside_low = _mm256_cmp_ps(in, low, _CMP_LT_OQ);
  const __m256 outside_high = _mm256_cmp_ps(in, high, _CMP_GT_OQ);
  return _mm256_blendv_ps(_mm256_andnot_ps(outside_low, e), _mm256_set1_ps(__builtin_inff()),
                          outside_high);
}

// x * sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x^3): the same function as gelu_tanh's
// 0.5 x (1 + tanh(u)), written without tanh (1 + tanh(u) = 2 / (1 + e^(-2u))), which also keeps
// its relative precision for negative x, where 1 + tanh(u) cancels.
__m256 gelu8(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286535588f),
                                 _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
  const __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// x * sigmoid(x).
__m256 silu8(__m256 x) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

template <__m256 (*kAct)(__m256)>
void gated8(const float* gate, const float* up, float* out, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_mul_ps(kAct(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  if (i == n) return;
  // The tail through the same vector code, so that an element's result does not depend on
  // where the caller's range (a thread's share of the rows) happens to end.
  alignas(32) float g[8] = {}, u[8] = {}, o[8];
  for (int j = 0; i + j < n; ++j) g[j] = gate[i + j], u[j] = up[i + j];
  _mm256_store_ps(o, _mm256_mul_ps(kAct(_mm256_load_ps(g)), _mm256_load_ps(u)));
  for (int j = 0; i + j < n; ++j) out[i + j] = o[j];
}

}  // namespace

void gated_gelu_avx2(const float* gate, const float* up, float* out, int n) {
  gated8<gelu8>(gate, up, out, n);
}

void gated_silu_avx2(const float* gate, const float* up, float* out, int n) {
  gated8<silu8>(gate, up, out, n);
}

}  // namespace icam::llm::ops
