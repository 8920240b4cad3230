// AVX2/F16C versions of the half-precision attention helpers in ops.cpp. This file is compiled
// with -mavx2 -mfma -mf16c and only called when the CPU reports those features.
#include <immintrin.h>

#include <cstdint>

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

void f32_to_f16_avx2(const float* in, uint16_t* out, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = f32_to_fp16(in[i]);
}

}  // namespace icam::llm::ops
