// AVX2 dot products of packed groups of 8 weight rows (packed_layout.h) with up to
// kMaxPackedCols Q8_0 activation rows.
//
// Compiled with AVX2 flags: only call through the dispatch in kernel_table.cpp; internal helpers
// only, no standard-library templates (see vec_dot_avx2.cpp). The kernels themselves are in
// packed_dot_kernels.inc, shared with the VNNI variants (packed_dot_avxvnni.cpp,
// packed_dot_avx512vnni.cpp).
//
// A 32-byte vector of weight codes holds 4 consecutive elements (a chunk) of each of the 8 rows,
// so the activation side is the same 4 codes broadcast to all 8 lanes, and vpmaddubsw + vpmaddwd
// leave in lane r the exact integer partial sum of row r over the chunk: no horizontal sums, and
// the 8 rows' block scales load as one vector.
//
// Results are bit-identical to the scalar and row-by-row AVX2 kernels: all follow the numerics of
// kernels.h (per row, one fused multiply-add of d_w * d_x and the block's exact integer sum,
// block after block). Here lane r of each vector is row r, so the integer sums of a block need no
// horizontal adds and the float work is one conversion and one fused multiply-add per block for 8
// rows.
#include <immintrin.h>

#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/packed_layout.h"

namespace icam::llm::avx2 {
namespace {

// vpmaddubsw (pairs of byte products, 16-bit) then vpmaddwd with ones (pairs of those, 32-bit),
// added to acc.
__m256i dot4_add(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

}  // namespace

#include "drivers/llm/quant/packed_dot_kernels.inc"

}  // namespace icam::llm::avx2

// ---- Q4_K and Q6_K (packed_dot_k_kernels.inc), one group of 8 rows per call ------------------

namespace icam::llm::avx2 {
namespace {

struct V {
  using I = __m256i;
  using F = __m256;
  static constexpr int kRows = kPackRows;
  static I load(const uint8_t* p, size_t) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static F halves(const uint8_t* p, size_t) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I scales_u8(const uint8_t* p, size_t) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
  }
  static I scales_i8(const uint8_t* p, size_t) {
    const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)),
                           _mm256_slli_epi32(v, 16));
  }
  static I blend_hi16(I a, I b) { return _mm256_blend_epi16(a, b, 0xAA); }
  static I madd(I a, I b) { return _mm256_madd_epi16(a, b); }
  static I madd_acc(I acc, I p, I s) { return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s)); }
  static I maddubs(I u, I s) { return _mm256_maddubs_epi16(u, s); }
  static I set1_8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
  static I set1_32(int32_t v) { return _mm256_set1_epi32(v); }
  static I izero() { return _mm256_setzero_si256(); }
  static I and_(I a, I b) { return _mm256_and_si256(a, b); }
  static I or_(I a, I b) { return _mm256_or_si256(a, b); }
  static I and_or(I a, I m, I b) { return _mm256_or_si256(_mm256_and_si256(a, m), b); }
  static I srli16(I a, int n) { return _mm256_srli_epi16(a, n); }
  static I slli16(I a, int n) { return _mm256_slli_epi16(a, n); }
  static I slli32(I a, int n) { return _mm256_slli_epi32(a, n); }
  static I add32(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub32(I a, I b) { return _mm256_sub_epi32(a, b); }
  static F cvt(I a) { return _mm256_cvtepi32_ps(a); }
  static F fzero() { return _mm256_setzero_ps(); }
  static F fset1(float v) { return _mm256_set1_ps(v); }
  static F fmul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  // One group per call: one stream, kPrefetchAhead256 ahead (packed_dot_kernels.inc).
  static void prefetch(const uint8_t* p, size_t, size_t bytes) { prefetch_ahead(p, bytes); }
  static void store(float* out, F v) { _mm256_storeu_ps(out, v); }
};

#include "drivers/llm/quant/packed_dot_k_kernels.inc"

constexpr KGroupFn kQ4K[kMaxPackedCols] = {q4_k_cols<1>, q4_k_cols<2>, q4_k_cols<3>, q4_k_cols<4>};
constexpr KGroupFn kQ6K[kMaxPackedCols] = {q6_k_cols<1>, q6_k_cols<2>, q6_k_cols<3>, q6_k_cols<4>};

}  // namespace

void packed_dot_q4_k(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx,
                     float* out) {
  kQ4K[nx - 1](n, group, 0, x, x_stride, out);
}

void packed_dot_q6_k(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx,
                     float* out) {
  kQ6K[nx - 1](n, group, 0, x, x_stride, out);
}

}  // namespace icam::llm::avx2
