// AVX-512 versions of the attention loops over a sequence's keys and values (ops.cpp). Compiled
// with AVX512F flags and only called when icam::use_avx512() is true; internal helpers only, no
// standard-library templates (see ops_avx2.cpp).
//
// Results are bit-identical to the AVX2 helpers they replace, only with half the instructions:
// a 16-lane accumulator is the AVX2 dot product's two 8-lane accumulators side by side (reduced
// the same way), and the weighted sum keeps up to 256 outputs in registers while it adds the
// rows' contributions in the same order, one fused multiply-add per element and row, as the
// AVX2 axpy does through memory.
#include <immintrin.h>

#include <cstdint>

// GCC 12 warns about the undefined vectors inside its own 512-bit intrinsics' headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace icam::llm::ops {
namespace {

__m512 load_halves(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// out[0 .. 16 * kChunks) = sum_j w[j] * rows[j][offset + ...], j in order, from zero.
template <int kChunks>
void weighted_sum_chunks(const float* w, const uint16_t* const* rows, int count, int offset,
                         float* out) {
  __m512 acc[kChunks];
  for (int c = 0; c < kChunks; ++c) acc[c] = _mm512_setzero_ps();
  for (int j = 0; j < count; ++j) {
    const __m512 weight = _mm512_set1_ps(w[j]);
    const uint16_t* v = rows[j] + offset;
    for (int c = 0; c < kChunks; ++c)
      acc[c] = _mm512_fmadd_ps(weight, load_halves(v + 16 * c), acc[c]);
  }
  for (int c = 0; c < kChunks; ++c) _mm512_storeu_ps(out + offset + 16 * c, acc[c]);
}

using ChunksFn = void (*)(const float*, const uint16_t* const*, int, int, float*);
constexpr ChunksFn kWeightedSum[16] = {
    weighted_sum_chunks<1>,  weighted_sum_chunks<2>,  weighted_sum_chunks<3>,
    weighted_sum_chunks<4>,  weighted_sum_chunks<5>,  weighted_sum_chunks<6>,
    weighted_sum_chunks<7>,  weighted_sum_chunks<8>,  weighted_sum_chunks<9>,
    weighted_sum_chunks<10>, weighted_sum_chunks<11>, weighted_sum_chunks<12>,
    weighted_sum_chunks<13>, weighted_sum_chunks<14>, weighted_sum_chunks<15>,
    weighted_sum_chunks<16>};

}  // namespace

// n % 16 == 0.
void dot_f16_rows_avx512(const float* q, const uint16_t* const* rows, int count, int n,
                         float* out) {
  for (int j = 0; j < count; ++j) {
    const uint16_t* k = rows[j];
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load_halves(k + i), acc);
    // dot_f16_avx2's reduction: its two accumulators added, then the 128-bit halves, then pairs.
    const __m256 lo = _mm512_castps512_ps256(acc);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
    const __m256 both = _mm256_add_ps(lo, hi);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(both), _mm256_extractf128_ps(both, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    out[j] = _mm_cvtss_f32(s);
  }
}

// n % 16 == 0.
void weighted_sum_f16_avx512(const float* w, const uint16_t* const* rows, int count, int n,
                             float* out) {
  for (int offset = 0; offset < n; offset += 256) {
    const int chunks = (n - offset) / 16 < 16 ? (n - offset) / 16 : 16;
    kWeightedSum[chunks - 1](w, rows, count, offset, out);
  }
}

}  // namespace icam::llm::ops
