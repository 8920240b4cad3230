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

#include "drivers/llm/engine/head_blocks.h"

// GCC 12 warns about the undefined vectors inside its own 512-bit intrinsics' headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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

// How many rows ahead the dot products ask for the rows they will read. A sequence's keys lie in
// the KV pool's pages, a few KiB per page and layer, pages far apart, where the hardware
// prefetchers, which follow one 4 KiB page at a time, find little to follow.
constexpr int kRowsAhead = 8;

// Asks for `bytes` from p on, whole lines.
void prefetch_bytes(const void* p, int bytes) {
  const char* c = static_cast<const char*>(p);
  for (int i = 0; i < bytes; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
}

// H heads' dot products with rows [j, j + R): each row's halves converted once for all heads,
// each (head, row) product accumulated in its own register in the single-head order. A product
// is a chain of n / 16 dependent multiply-adds; R rows at a time put H * R chains side by side,
// where one row at a time left the multiply-adds waiting on each other.
template <int H, int R>
void dot_block(const float* q, int64_t q_stride, const uint16_t* const* rows, int j, int count,
               int n, float* out, int64_t out_stride) {
  for (int r = 0; r < R; ++r)
    if (j + kRowsAhead + r < count) prefetch_bytes(rows[j + kRowsAhead + r], 2 * n);
  __m512 acc[H][R];
  for (int h = 0; h < H; ++h)
    for (int r = 0; r < R; ++r) acc[h][r] = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    __m512 key[R];
    for (int r = 0; r < R; ++r) key[r] = load_halves(rows[j + r] + i);
    for (int h = 0; h < H; ++h) {
      const __m512 qh = _mm512_loadu_ps(q + h * q_stride + i);
      for (int r = 0; r < R; ++r) acc[h][r] = _mm512_fmadd_ps(qh, key[r], acc[h][r]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int r = 0; r < R; ++r) out[h * out_stride + j + r] = reduce_like_avx2(acc[h][r]);
}

template <int H>
void dot_rows_heads(const float* q, int64_t q_stride, const uint16_t* const* rows, int count, int n,
                    float* out, int64_t out_stride) {
  constexpr int R = H <= 2 ? 8 / H : 2;  // 6 to 8 chains
  int j = 0;
  for (; j + R <= count; j += R) dot_block<H, R>(q, q_stride, rows, j, count, n, out, out_stride);
  for (; j < count; ++j) dot_block<H, 1>(q, q_stride, rows, j, count, n, out, out_stride);
}

// For H heads, out_h[offset .. offset + 16 * C) = sum_j w_h[j] * rows[j][offset + ...], j in
// order, from zero (or, with `accumulate`, on from the sums already in out): each row's halves
// converted once for all heads. H * C <= 16 accumulators.
template <int H, int C>
void weighted_sum_chunks(const float* w, int64_t w_stride, const uint16_t* const* rows, int count,
                         int offset, float* out, int64_t out_stride, bool accumulate) {
  __m512 acc[H][C];
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c)
      acc[h][c] = accumulate ? _mm512_loadu_ps(out + h * out_stride + offset + 16 * c)
                             : _mm512_setzero_ps();
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
                       int count, int offset, float* out, int64_t out_stride, bool accumulate) {
  if constexpr (C > 1) {
    if (chunks < C)
      return weighted_sum_pick<H, C - 1>(chunks, w, w_stride, rows, count, offset, out, out_stride,
                                         accumulate);
  }
  weighted_sum_chunks<H, C>(w, w_stride, rows, count, offset, out, out_stride, accumulate);
}

// Rows per block of the weighted sum. When the heads' outputs take more registers than there
// are, the sum makes several passes over the rows, each for a part of the outputs; block by
// block, every pass but the first finds the block's rows in L1 instead of reading them again
// from memory (and the next block's rows are asked for meanwhile). Each output's sum still adds
// the rows in order, one fused multiply-add each: stored between blocks, not rounded.
constexpr int kBlockRows = 16;

template <int H>
void weighted_sum_heads(const float* w, int64_t w_stride, const uint16_t* const* rows, int count,
                        int n, float* out, int64_t out_stride) {
  constexpr int kMaxChunks = 16 / H;
  for (int j0 = 0; j0 < count; j0 += kBlockRows) {
    const int rows_here = count - j0 < kBlockRows ? count - j0 : kBlockRows;
    const int next_end = count - j0 < 2 * kBlockRows ? count : j0 + 2 * kBlockRows;
    for (int j = j0 + rows_here; j < next_end; ++j) prefetch_bytes(rows[j], 2 * n);
    for (int offset = 0; offset < n; offset += 16 * kMaxChunks) {
      const int chunks = (n - offset) / 16 < kMaxChunks ? (n - offset) / 16 : kMaxChunks;
      weighted_sum_pick<H, kMaxChunks>(chunks, w + j0, w_stride, rows + j0, rows_here, offset, out,
                                       out_stride, j0 > 0);
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
