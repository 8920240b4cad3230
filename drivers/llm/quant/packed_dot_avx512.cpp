// 512-bit packed-group kernels (AVX512F/BW/VL + AVX512-VNNI): two packed groups of 8 rows (16
// rows) per call, one zmm lane per row, on the same packed layout as the 256-bit kernels
// (packed_layout.h) and with results bit-identical to them (packed_dot_kernels.inc).
//
// Compiled with AVX-512 flags (CMakeLists.txt): only call through the dispatch in
// kernel_table.cpp on CPUs that have those sets; internal helpers only, no standard-library
// templates (see vec_dot_avx2.cpp).
//
// Q8_0 and Q5_0 follow the numerics of kernels.h, as every kernel does (one fused multiply-add
// per block and row, in block order), so the results are bit-identical to the 256-bit, row and
// scalar kernels; lanes 0-7 hold the rows of the first group, lanes 8-15 those of the second.
// Q4_K and Q6_K (packed_dot_k_kernels.inc) likewise, per super-block.
//
// What differs, in the integer part only (the sums are the same integers):
// - Q8_0: vpdpbusd multiplies unsigned by signed bytes. The 256-bit kernels make the weights
//   unsigned with vpsignb (|w| times the activation with w's sign), once per chunk and
//   activation row; AVX-512 has no vpsignb. Here the weights are biased instead, w + 128 (an xor
//   with 0x80, once per chunk for all activation rows), and each block's sum starts at -128 *
//   (the activation block's code sum, kernels.h): sum (w + 128) * a - 128 * sum a = sum w * a,
//   exactly, in int32 (|sum| < 2^20). The activation codes reach vpdpbusd as an embedded 32-bit
//   broadcast from memory.
// - Q5_0: the codes are unsigned already and go to vpdpbusd as they are; the sums start at -16 *
//   the code sum, as in the 256-bit kernels.
#include <immintrin.h>

#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/packed_layout.h"

// GCC 12 warns about the undefined vectors inside its own 512-bit intrinsics' headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace icam::llm::avx512 {
namespace {

// The planar Q8_0 activation row of kernels.h.
struct ActivationRow {
  const int8_t* codes;
  const float* scales;
  const int32_t* code_sums;
};

ActivationRow activation_row(const uint8_t* x, size_t x_stride, int c, int64_t blocks) {
  ActivationRow row;
  row.codes = reinterpret_cast<const int8_t*>(x + c * x_stride);
  row.scales = reinterpret_cast<const float*>(row.codes + blocks * kBlock32);
  row.code_sums = reinterpret_cast<const int32_t*>(row.scales + blocks);
  return row;
}

int32_t load32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// 32 bytes at p (first group, lanes 0-7) and at p + group_bytes (second group, lanes 8-15).
__m512i load_pair(const uint8_t* p, size_t group_bytes) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + group_bytes));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// The 16 rows' scales of block b.
__m512 row_scales(const uint16_t* scales0, const uint16_t* scales1, int64_t b) {
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales0 + b * kPackRows));
  const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales1 + b * kPackRows));
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

// Lanes 0-7 to out[0..7] (first group), lanes 8-15 to out[8..15] (second group).
void store16(float* out, __m512 v) {
  _mm512_storeu_ps(out, v);
}

// Bit k of each byte of the high-bit plane moved to bit 4 (see packed_dot_kernels.inc).
template <int K>
__m512i high_bit_to_bit4(__m512i plane) {
  if constexpr (K < 4) {
    return _mm512_slli_epi16(plane, 4 - K);
  } else if constexpr (K == 4) {
    return plane;
  } else {
    return _mm512_srli_epi16(plane, K - 4);
  }
}

// Chunks K .. K + KC - 1 of block w (codes of the first group; the second's are group_bytes on)
// as vpdpbusd's unsigned operand, for all activation rows.
template <bool Q5, int K>
__m512i weights(const uint8_t* w, size_t group_bytes, __m512i plane) {
  if constexpr (!Q5) {
    // Q8_0: the signed codes biased by +128 (the sums start at -128 * the activations' sum).
    return _mm512_xor_si512(load_pair(w + 32 * K, group_bytes), _mm512_set1_epi8(-128));
  } else {
    // Q5_0: codes 0..31 from the nibbles of pair K / 2 and bit K of the high-bit plane.
    const __m512i low4 = _mm512_set1_epi8(15);
    const __m512i bit4 = _mm512_set1_epi8(16);
    const __m512i nibbles = load_pair(w + 32 + 32 * (K / 2), group_bytes);
    const __m512i low = (K % 2 == 0) ? nibbles : _mm512_srli_epi16(nibbles, 4);
    // (low & 15) | (high & 16) as one ternary-logic operation on (low, 15, high & 16).
    return _mm512_ternarylogic_epi32(low, low4,
                                     _mm512_and_si512(high_bit_to_bit4<K>(plane), bit4), 0xEA);
  }
}

// f.operator()<J>() for J = 0 .. N - 1, unrolled (J is a shift count in the Q5_0 unpacking).
template <int J, int N, typename F>
__attribute__((always_inline)) inline void unroll(const F& f) {
  if constexpr (J < N) {
    f.template operator()<J>();
    unroll<J + 1, N>(f);
  }
}

// How far ahead (in both groups of a pair) the kernels ask for weights. On the 2-core Xeon of
// 2026-12-05 the hardware prefetchers alone left the kernels waiting on memory, and 2 KiB ahead
// still did at batch 8, where a block takes long enough that the prefetch came too late:
// engine_bench A/B, 2 KiB against 8 KiB, decode batch 1 92-94 -> 97-105 tokens/s and batch 8
// 351-362 -> 394-403 tokens/s (16 KiB: no better).
constexpr size_t kPrefetchAhead = 8192;

// Q8_0 and Q5_0 on a pair of groups with the numerics of kernels.h: per block, the 16 rows'
// exact integer sums (vpdpbusd, started at -offset * the activation block's code sum), then one
// conversion and one fused multiply-add per block and activation row. Each block's weights are
// loaded (and biased or unpacked) once, into 8 registers, for all NX activation rows.
template <bool Q5, int NX>
void pair_cols(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
               size_t x_stride, float* out) {
  constexpr size_t block_bytes = Q5 ? packed_q5_0_block_bytes() : packed_q8_0_block_bytes();
  constexpr int32_t offset = Q5 ? 16 : 128;
  const int64_t blocks = n / kBlock32;
  const auto* scales0 = reinterpret_cast<const uint16_t*>(group);
  const auto* scales1 = reinterpret_cast<const uint16_t*>(group + group_bytes);
  const uint8_t* codes = group + packed_scale_bytes(blocks);
  ActivationRow act[NX];
  __m512 acc[NX];
  for (int c = 0; c < NX; ++c) {
    act[c] = activation_row(x, x_stride, c, blocks);
    acc[c] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* w = codes + b * block_bytes;
    // Ask for the weights kPrefetchAhead on in both groups (past a group's end: the next
    // groups).
    for (size_t i = 0; i < block_bytes; i += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetchAhead + i), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w + group_bytes + kPrefetchAhead + i),
                   _MM_HINT_T0);
    }
    const __m512i plane = Q5 ? load_pair(w, group_bytes) : _mm512_setzero_si512();
    __m512i q[8];
    unroll<0, 8>([&]<int K>() { q[K] = weights<Q5, K>(w, group_bytes, plane); });
    const __m512 dw = row_scales(scales0, scales1, b);
#pragma GCC unroll 8
    for (int c = 0; c < NX; ++c) {
      const int8_t* a = act[c].codes + b * kBlock32;
      // Two chains of four, so that one activation row does not wait on eight in a row.
      __m512i even = _mm512_set1_epi32(-offset * act[c].code_sums[b]);
      __m512i odd = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int k = 0; k < 8; k += 2) {
        even = _mm512_dpbusd_epi32(even, q[k], _mm512_set1_epi32(load32(a + 4 * k)));
        odd = _mm512_dpbusd_epi32(odd, q[k + 1], _mm512_set1_epi32(load32(a + 4 * k + 4)));
      }
      const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(act[c].scales[b]));
      acc[c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd)), acc[c]);
    }
  }
  for (int c = 0; c < NX; ++c) store16(out + 2 * kPackRows * c, acc[c]);
}

// ---- Q4_K and Q6_K (packed_dot_k_kernels.inc): two groups, 16 rows per call ----------------

struct V {
  using I = __m512i;
  using F = __m512;
  static constexpr int kRows = 2 * kPackRows;
  static I load(const uint8_t* p, size_t gb) { return load_pair(p, gb); }
  static F halves(const uint8_t* p, size_t gb) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + gb));
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
  }
  static __m128i bytes16(const uint8_t* p, size_t gb) {
    const __m128i lo = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + gb));
    return _mm_unpacklo_epi64(lo, hi);
  }
  static I scales_u8(const uint8_t* p, size_t gb) {
    const __m512i v = _mm512_cvtepu8_epi32(bytes16(p, gb));
    return _mm512_or_si512(v, _mm512_slli_epi32(v, 16));
  }
  static I scales_i8(const uint8_t* p, size_t gb) {
    const __m512i v = _mm512_cvtepi8_epi32(bytes16(p, gb));
    return _mm512_or_si512(_mm512_and_si512(v, _mm512_set1_epi32(0xffff)),
                           _mm512_slli_epi32(v, 16));
  }
  static I blend_hi16(I a, I b) { return _mm512_mask_blend_epi16(0xAAAAAAAAu, a, b); }
  static I madd(I a, I b) { return _mm512_madd_epi16(a, b); }
  // vpdpwssd: acc + the two int16 products of each lane, wrapping like vpmaddwd + vpaddd.
  static I madd_acc(I acc, I p, I s) { return _mm512_dpwssd_epi32(acc, p, s); }
  static I maddubs(I u, I s) { return _mm512_maddubs_epi16(u, s); }
  static I set1_8(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }
  static I set1_32(int32_t v) { return _mm512_set1_epi32(v); }
  static I izero() { return _mm512_setzero_si512(); }
  static I and_(I a, I b) { return _mm512_and_si512(a, b); }
  static I or_(I a, I b) { return _mm512_or_si512(a, b); }
  static I and_or(I a, I m, I b) { return _mm512_ternarylogic_epi32(a, m, b, 0xEA); }
  static I srli16(I a, int n) { return _mm512_srli_epi16(a, n); }
  static I slli16(I a, int n) { return _mm512_slli_epi16(a, n); }
  static I slli32(I a, int n) { return _mm512_slli_epi32(a, n); }
  static I add32(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub32(I a, I b) { return _mm512_sub_epi32(a, b); }
  static F cvt(I a) { return _mm512_cvtepi32_ps(a); }
  static F fzero() { return _mm512_setzero_ps(); }
  static F fset1(float v) { return _mm512_set1_ps(v); }
  static F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  // A super-block's bytes of both groups, kPrefetchAhead on.
  static void prefetch(const uint8_t* p, size_t gb, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + i), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + gb + kPrefetchAhead + i), _MM_HINT_T0);
    }
  }
  static void store(float* out, F v) { store16(out, v); }
};

#include "drivers/llm/quant/packed_dot_k_kernels.inc"

constexpr KGroupFn kQ4K[kMaxPackedPairCols] = {q4_k_cols<1>, q4_k_cols<2>, q4_k_cols<3>,
                                               q4_k_cols<4>, q4_k_cols<5>, q4_k_cols<6>,
                                               q4_k_cols<7>, q4_k_cols<8>};
constexpr KGroupFn kQ6K[kMaxPackedPairCols] = {q6_k_cols<1>, q6_k_cols<2>, q6_k_cols<3>,
                                               q6_k_cols<4>, q6_k_cols<5>, q6_k_cols<6>,
                                               q6_k_cols<7>, q6_k_cols<8>};

using PairFn = void (*)(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                        size_t x_stride, float* out);

constexpr PairFn kQ8_0[kMaxPackedPairCols] = {
    pair_cols<false, 1>, pair_cols<false, 2>, pair_cols<false, 3>, pair_cols<false, 4>,
    pair_cols<false, 5>, pair_cols<false, 6>, pair_cols<false, 7>, pair_cols<false, 8>};
constexpr PairFn kQ5_0[kMaxPackedPairCols] = {
    pair_cols<true, 1>, pair_cols<true, 2>, pair_cols<true, 3>, pair_cols<true, 4>,
    pair_cols<true, 5>, pair_cols<true, 6>, pair_cols<true, 7>, pair_cols<true, 8>};

}  // namespace

void packed_dot_pair_q4_k(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out) {
  kQ4K[nx - 1](n, group, group_bytes, x, x_stride, out);
}

void packed_dot_pair_q6_k(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out) {
  kQ6K[nx - 1](n, group, group_bytes, x, x_stride, out);
}

void packed_dot_pair_q8_0(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out) {
  kQ8_0[nx - 1](n, group, group_bytes, x, x_stride, out);
}

void packed_dot_pair_q5_0(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out) {
  kQ5_0[nx - 1](n, group, group_bytes, x, x_stride, out);
}

}  // namespace icam::llm::avx512
