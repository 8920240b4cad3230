// AVX2 dot products of packed groups of 8 weight rows (packed_layout.h) with up to
// kMaxPackedCols Q8_0 activation rows.
//
// Compiled with AVX2 flags: only call through the dispatch in kernel_table.cpp; internal helpers
// only, no standard-library templates (see vec_dot_avx2.cpp).
//
// A 32-byte vector of weight codes holds 4 consecutive elements (a chunk) of each of the 8 rows,
// so the activation side is the same 4 codes broadcast to all 8 lanes, and vpmaddubsw + vpmaddwd
// leave in lane r the exact integer partial sum of row r over the chunk: no horizontal sums, and
// the 8 rows' block scales load as one vector.
//
// Results are bit-identical to the row-by-row AVX2 kernels (dot_blocks32_cols in
// vec_dot_avx2.cpp), whose float order decides which token wins: those keep, per row, eight
// float lanes where lane k adds scale * (chunk k's integer sum) block after block with a fused
// multiply-add, and sum the lanes at the end as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
// Here chunk k's accumulator holds lane k of all 8 rows, so the same operations happen in the
// same order, on 8 rows at once. The Q5_0 offset term is kept the same way (see below).
#include <immintrin.h>

#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/packed_layout.h"

namespace icam::llm::avx2 {
namespace {

__m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Codes 4k .. 4k+3 of an activation block broadcast to all 8 lanes.
__m256i broadcast4(const int8_t* block_codes, int k) {
  int32_t four;
  std::memcpy(&four, block_codes + 4 * k, sizeof four);
  return _mm256_set1_epi32(four);
}

// The planar Q8_0 activation row of kernels.h: codes, then fp16-exact float scales, then scaled
// code sums (scale * sum of the block's codes).
struct ActivationRow {
  const int8_t* codes;
  const float* scales;
  const float* scaled_sums;
};

ActivationRow activation_row(const uint8_t* x, size_t x_stride, int c, int64_t blocks) {
  ActivationRow row;
  row.codes = reinterpret_cast<const int8_t*>(x + c * x_stride);
  row.scales = reinterpret_cast<const float*>(row.codes + blocks * kBlock32);
  row.scaled_sums = row.scales + blocks;
  return row;
}

// The 8 rows' scales of block b.
__m256 row_scales(const uint16_t* scales, int64_t b) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + b * kPackRows)));
}

// Lane r: the row kernels' final horizontal sum of row r's eight lanes, lane k being v[k][r].
__m256 sum_lanes(const __m256 (&v)[8]) {
  const __m256 t0 = _mm256_add_ps(v[0], v[4]);
  const __m256 t1 = _mm256_add_ps(v[1], v[5]);
  const __m256 t2 = _mm256_add_ps(v[2], v[6]);
  const __m256 t3 = _mm256_add_ps(v[3], v[7]);
  return _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3));
}

// Q8_0: signed codes go through vpmaddubsw as |w| (unsigned) times the activation with w's sign.
template <int NX>
void packed_q8_0_cols(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride,
                      float* out) {
  const int64_t blocks = n / kBlock32;
  const auto* scales = reinterpret_cast<const uint16_t*>(group);
  const uint8_t* codes = group + packed_scale_bytes(blocks);
  ActivationRow act[NX];
  __m256 acc[NX][8];
  for (int c = 0; c < NX; ++c) {
    act[c] = activation_row(x, x_stride, c, blocks);
    for (int k = 0; k < 8; ++k) acc[c][k] = _mm256_setzero_ps();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < blocks; ++b) {
    const __m256 dw = row_scales(scales, b);
    __m256 d[NX];
    for (int c = 0; c < NX; ++c) d[c] = _mm256_mul_ps(dw, _mm256_set1_ps(act[c].scales[b]));
    const uint8_t* w = codes + b * packed_q8_0_block_bytes();
    for (int k = 0; k < 8; ++k) {
      const __m256i q = load256(w + 32 * k);
      const __m256i magnitude = _mm256_sign_epi8(q, q);
      for (int c = 0; c < NX; ++c) {
        const __m256i a = _mm256_sign_epi8(broadcast4(act[c].codes + b * kBlock32, k), q);
        const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, a), ones);
        acc[c][k] = _mm256_fmadd_ps(d[c], _mm256_cvtepi32_ps(dot), acc[c][k]);
      }
    }
  }
  for (int c = 0; c < NX; ++c) _mm256_storeu_ps(out + kPackRows * c, sum_lanes(acc[c]));
}

// Bit k of each byte of the high-bit plane moved to bit 4 (other bits are masked off by the
// caller; 16-bit shifts only move bits across bytes into positions the mask clears).
template <int K>
__m256i high_bit_to_bit4(__m256i plane) {
  if constexpr (K < 4) {
    return _mm256_slli_epi16(plane, 4 - K);
  } else if constexpr (K == 4) {
    return plane;
  } else {
    return _mm256_srli_epi16(plane, K - 4);
  }
}

// Chunks 2p and 2p + 1 of a Q5_0 block: unsigned codes 0..31 from the nibble pair and the plane.
template <int P>
void q5_0_chunk_pair(const uint8_t* w, __m256i plane, __m256i& lo, __m256i& hi) {
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m256i bit4 = _mm256_set1_epi8(16);
  const __m256i nibbles = load256(w + 32 + 32 * P);
  lo = _mm256_or_si256(_mm256_and_si256(nibbles, low4),
                       _mm256_and_si256(high_bit_to_bit4<2 * P>(plane), bit4));
  hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(nibbles, 4), low4),
                       _mm256_and_si256(high_bit_to_bit4<2 * P + 1>(plane), bit4));
}

// Q5_0: unsigned codes q in 0..31 go to vpmaddubsw directly; the codes' offset of 16 is taken
// off at the end as 16 * sum_b d_w[b] * scaled_sum[b]. The row kernels accumulate that sum in
// eight lanes by block (lane k: blocks k, k + 8, ...), so here accumulator k takes blocks
// b = k mod 8 for all 8 rows.
template <int NX>
void packed_q5_0_cols(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride,
                      float* out) {
  const int64_t blocks = n / kBlock32;
  const auto* scales = reinterpret_cast<const uint16_t*>(group);
  const uint8_t* codes = group + packed_scale_bytes(blocks);
  ActivationRow act[NX];
  __m256 acc[NX][8];
  for (int c = 0; c < NX; ++c) {
    act[c] = activation_row(x, x_stride, c, blocks);
    for (int k = 0; k < 8; ++k) acc[c][k] = _mm256_setzero_ps();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < blocks; ++b) {
    const __m256 dw = row_scales(scales, b);
    __m256 d[NX];
    for (int c = 0; c < NX; ++c) d[c] = _mm256_mul_ps(dw, _mm256_set1_ps(act[c].scales[b]));
    const uint8_t* w = codes + b * packed_q5_0_block_bytes();
    const __m256i plane = load256(w);
    __m256i q[8];
    q5_0_chunk_pair<0>(w, plane, q[0], q[1]);
    q5_0_chunk_pair<1>(w, plane, q[2], q[3]);
    q5_0_chunk_pair<2>(w, plane, q[4], q[5]);
    q5_0_chunk_pair<3>(w, plane, q[6], q[7]);
    for (int k = 0; k < 8; ++k) {
      for (int c = 0; c < NX; ++c) {
        const __m256i a = broadcast4(act[c].codes + b * kBlock32, k);
        const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], a), ones);
        acc[c][k] = _mm256_fmadd_ps(d[c], _mm256_cvtepi32_ps(dot), acc[c][k]);
      }
    }
  }
  for (int c = 0; c < NX; ++c) {
    __m256 offset[8];
    for (int k = 0; k < 8; ++k) offset[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b)
      offset[b % 8] = _mm256_fmadd_ps(row_scales(scales, b), _mm256_set1_ps(act[c].scaled_sums[b]),
                                      offset[b % 8]);
    const __m256 total =
        _mm256_sub_ps(sum_lanes(acc[c]), _mm256_mul_ps(_mm256_set1_ps(16.0f), sum_lanes(offset)));
    _mm256_storeu_ps(out + kPackRows * c, total);
  }
}

using GroupFn = void (*)(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride,
                         float* out);

constexpr GroupFn kQ8_0[kMaxPackedCols] = {packed_q8_0_cols<1>, packed_q8_0_cols<2>,
                                           packed_q8_0_cols<3>, packed_q8_0_cols<4>};
constexpr GroupFn kQ5_0[kMaxPackedCols] = {packed_q5_0_cols<1>, packed_q5_0_cols<2>,
                                           packed_q5_0_cols<3>, packed_q5_0_cols<4>};

}  // namespace

void packed_dot_q8_0(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx,
                     float* out) {
  kQ8_0[nx - 1](n, group, x, x_stride, out);
}

void packed_dot_q5_0(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx,
                     float* out) {
  kQ5_0[nx - 1](n, group, x, x_stride, out);
}

}  // namespace icam::llm::avx2
