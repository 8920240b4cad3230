// AVX-512 versions of the attention loops over a sequence's keys and values (ops.cpp). Compiled
// with AVX512F flags and only called when icam::use_avx512() is true; internal helpers only, no
// standard-library templates (see ops_avx2.cpp).
//
// Results are bit-identical to the AVX2 helpers they replace, only with fewer instructions: a
// 16-lane accumulator is the AVX2 dot product's two 8-lane accumulators side by side (reduced
// the same way), and the weighted sum keeps up to 256 outputs in registers while it adds the
// rows' contributions in the same order, one fused multiply-add per element and row, as the
// AVX2 axpy does through memory. The query heads that share a key/value head (grouped-query
// attention) go through together, up to four at a time: a row's halves are loaded and converted
// once for all of them, and each head's sums keep the single-head order.
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

// dot_f16_avx2's reduction of a 16-lane accumulator: its two 8-lane accumulators added, then
// the 128-bit halves, then pairs.
float reduce_like_avx2(__m512 acc) {
  const __m256 lo = _mm512_castps512_ps256(acc);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
  const __m256 both = _mm256_add_ps(lo, hi);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(both), _mm256_extractf128_ps(both, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

// H heads' dot products with every row: each row's halves converted once for all heads, each
// head's products accumulated in its own register in the single-head order.
template <int H>
void dot_rows_heads(const float* q, int64_t q_stride, const uint16_t* const* rows, int count, int n,
                    float* out, int64_t out_stride) {
  for (int j = 0; j < count; ++j) {
    const uint16_t* k = rows[j];
    __m512 acc[H];
    for (int h = 0; h < H; ++h) acc[h] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
      const __m512 key = load_halves(k + i);
      for (int h = 0; h < H; ++h)
        acc[h] = _mm512_fmadd_ps(_mm512_loadu_ps(q + h * q_stride + i), key, acc[h]);
    }
    for (int h = 0; h < H; ++h) out[h * out_stride + j] = reduce_like_avx2(acc[h]);
  }
}

// For H heads, out_h[offset .. offset + 16 * C) = sum_j w_h[j] * rows[j][offset + ...], j in
// order, from zero: each row's halves converted once for all heads. H * C <= 16 accumulators.
template <int H, int C>
void weighted_sum_chunks(const float* w, int64_t w_stride, const uint16_t* const* rows, int count,
                         int offset, float* out, int64_t out_stride) {
  __m512 acc[H][C];
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) acc[h][c] = _mm512_setzero_ps();
  for (int j = 0; j < count; ++j) {
    const uint16_t* v = rows[j] + offset;
    __m512 value[C];
    for (int c = 0; c < C; ++c) value[c] = load_halves(v + 16 * c);
    for (int h = 0; h < H; ++h) {
      const __m512 weight = _mm512_set1_ps(w[h * w_stride + j]);
      for (int c = 0; c < C; ++c) acc[h][c] = _mm512_fmadd_ps(weight, value[c], acc[h][c]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + h * out_stride + offset + 16 * c, acc[h][c]);
}

// weighted_sum_chunks<H, chunks> for 1 <= chunks <= C.
template <int H, int C>
void weighted_sum_pick(int chunks, const float* w, int64_t w_stride, const uint16_t* const* rows,
                       int count, int offset, float* out, int64_t out_stride) {
  if constexpr (C > 1) {
    if (chunks < C)
      return weighted_sum_pick<H, C - 1>(chunks, w, w_stride, rows, count, offset, out, out_stride);
  }
  weighted_sum_chunks<H, C>(w, w_stride, rows, count, offset, out, out_stride);
}

template <int H>
void weighted_sum_heads(const float* w, int64_t w_stride, const uint16_t* const* rows, int count,
                        int n, float* out, int64_t out_stride) {
  constexpr int kMaxChunks = 16 / H;
  for (int offset = 0; offset < n; offset += 16 * kMaxChunks) {
    const int chunks = (n - offset) / 16 < kMaxChunks ? (n - offset) / 16 : kMaxChunks;
    weighted_sum_pick<H, kMaxChunks>(chunks, w, w_stride, rows, count, offset, out, out_stride);
  }
}

// f.template operator()<H>(h) for the blocks of up to four heads h .. h + H - 1 (at most 16
// registers of accumulators per block).
template <typename F>
void for_head_blocks(int heads, const F& f) {
  for (int h = 0; h < heads; h += 4) {
    switch (heads - h < 4 ? heads - h : 4) {
      case 1:
        f.template operator()<1>(h);
        break;
      case 2:
        f.template operator()<2>(h);
        break;
      case 3:
        f.template operator()<3>(h);
        break;
      default:
        f.template operator()<4>(h);
    }
  }
}

}  // namespace

// n % 16 == 0.
void dot_f16_rows_avx512(const float* q, int heads, int64_t q_stride, const uint16_t* const* rows,
                         int count, int n, float* out, int64_t out_stride) {
  for_head_blocks(heads, [&]<int H>(int h) {
    dot_rows_heads<H>(q + h * q_stride, q_stride, rows, count, n, out + h * out_stride, out_stride);
  });
}

// n % 16 == 0.
void weighted_sum_f16_avx512(const float* w, int heads, int64_t w_stride,
                             const uint16_t* const* rows, int count, int n, float* out,
                             int64_t out_stride) {
  for_head_blocks(heads, [&]<int H>(int h) {
    weighted_sum_heads<H>(w + h * w_stride, w_stride, rows, count, n, out + h * out_stride,
                          out_stride);
  });
}

}  // namespace icam::llm::ops
