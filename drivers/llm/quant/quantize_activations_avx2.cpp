// AVX2/F16C activation quantizers, bit-identical to quantize_activations_scalar.cpp: the same
// amax, the same single multiply by 127 / amax, the same round-to-nearest-even (vroundps with the
// nearest mode; vcvtps2ph with rounding mode 0).
//
// Compiled with AVX2 flags: only call through the dispatch in kernel_table.cpp; internal helpers
// only, no standard-library templates (see vec_dot_avx2.cpp).
#include <immintrin.h>

#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/kernels.h"

namespace icam::llm::avx2 {
namespace {

float hmax_ps(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Largest |x| over n floats, n a multiple of 8.
float max_abs(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  return hmax_ps(m);
}

// Rounds 32 floats times `scale` to int8 in element order (inputs must round into int8 range).
__m256i round_to_int8(const float* x, __m256 scale) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __m256i v[4];
  for (int i = 0; i < 4; ++i) {
    const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), scale);
    v[i] = _mm256_cvtps_epi32(_mm256_round_ps(scaled, kNearest));
  }
  // The packs work per 128-bit half: the result holds 4-element groups v0[0-3] v1[0-3] v2[0-3]
  // v3[0-3] v0[4-7] v1[4-7] v2[4-7] v3[4-7]; the permute restores element order.
  const __m256i packed16_01 = _mm256_packs_epi32(v[0], v[1]);
  const __m256i packed16_23 = _mm256_packs_epi32(v[2], v[3]);
  const __m256i packed8 = _mm256_packs_epi16(packed16_01, packed16_23);
  return _mm256_permutevar8x32_epi32(packed8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Lane k: the sum of codes 4k .. 4k+3 of 32 int8 codes.
__m256i sum_chunks(__m256i q) {
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

// The sum of 32 int8 codes, from their chunk sums.
int sum_codes(__m256i quads) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(quads), _mm256_extracti128_si256(quads, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace

void quantize_q8_0_activations(const float* src, void* dst, int64_t n) {
  const int64_t blocks = n / kBlock32;
  auto* codes = static_cast<int8_t*>(dst);
  auto* scales = reinterpret_cast<float*>(codes + blocks * kBlock32);
  auto* code_sums = reinterpret_cast<int32_t*>(scales + blocks);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* x = src + b * kBlock32;
    const float amax = max_abs(x, kBlock32);
    const float inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256i q = round_to_int8(x, _mm256_set1_ps(inverse));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + b * kBlock32), q);
    scales[b] = _cvtsh_ss(_cvtss_sh(amax / 127.0f, 0));
    code_sums[b] = sum_codes(sum_chunks(q));
  }
}

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
    // Codes cannot round past 127 here (x * inverse <= 127 up to one rounding), so the scalar
    // version's clamp never changes a value; vpacksswb would saturate anyway.
    const __m256 scale = _mm256_set1_ps(inverse);
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int i = 0; i < kBlock256 / 32; ++i) {
      const __m256i q = round_to_int8(x + 32 * i, scale);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.qs + 32 * i), q);
      // Sums of 4 codes per int32 lane: lanes 0-3 cover elements 0-15, lanes 4-7 cover 16-31.
      const __m256i sums4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
      const __m256i sums8 = _mm256_hadd_epi32(sums4, sums4);
      const __m256i sums16 = _mm256_hadd_epi32(sums8, sums8);
      out.bsums[2 * i] = static_cast<int16_t>(_mm256_extract_epi32(sums16, 0));
      out.bsums[2 * i + 1] = static_cast<int16_t>(_mm256_extract_epi32(sums16, 4));
    }
  }
}

void quantize_f16(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), 0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = _cvtss_sh(src[i], 0);
}

// Round-to-nearest-even on the bit pattern: add 0x7fff plus the lowest kept bit, keep the top 16
// bits; NaNs are kept NaN by setting a mantissa bit instead.
void quantize_bf16(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  const __m256i bias = _mm256_set1_epi32(0x7fff);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i quiet = _mm256_set1_epi32(0x40);
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i infinity = _mm256_set1_epi32(0x7f800000);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i bits = _mm256_castps_si256(_mm256_loadu_ps(src + i));
    const __m256i lowest_kept = _mm256_and_si256(_mm256_srli_epi32(bits, 16), one);
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(bias, lowest_kept)), 16);
    const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(bits, 16), quiet);
    const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, abs_mask), infinity);
    const __m256i result = _mm256_blendv_epi8(rounded, nan, is_nan);
    // Pack 8 x 32-bit to 8 x 16-bit: values are < 65536, so the unsigned-saturating pack is exact.
    const __m256i packed = _mm256_packus_epi32(result, result);
    const __m256i ordered = _mm256_permute4x64_epi64(packed, 0x08);  // qwords 0 and 2
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(ordered));
  }
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, src + i, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
      out[i] = static_cast<uint16_t>((bits >> 16) | 0x40u);
    } else {
      out[i] = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }
  }
}

}  // namespace icam::llm::avx2
