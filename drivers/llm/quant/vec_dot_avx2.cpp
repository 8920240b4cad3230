// AVX2/FMA dot products of one weight row with up to kMaxDotCols activation rows.
//
// Compiled with AVX2 flags: only call through the dispatch in kernel_table.cpp. Everything but the
// entry points has internal linkage and no standard-library template is instantiated here, so no
// AVX2 code can leak into scalar code through the linker's choice among inline copies.
//
// The integer work follows the usual int8 recipe: vpmaddubsw multiplies unsigned weight codes (or
// |w| with the activation's sign moved onto it) by signed int8 activations and adds pairs into
// int16 without overflow for these code ranges, vpmaddwd adds pairs into int32 (multiplying by the
// sub-block scales on the way for the K-quants). Each weight block is unpacked once and used for
// all activation rows, which is what makes batched products cheaper than repeated ones.
//
// The quantized formats follow the numerics of kernels.h exactly (exact integer sums per block or
// super-block, then one fused multiply-add per block, two for Q4_K/Q5_K's mins, in block order),
// so they are bit-identical to vec_dot_scalar.cpp; Q4_0 and Q5_0 multiply unsigned codes and
// subtract the codes' offset times the activation's code sum per block, in integers.
#include <immintrin.h>

#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/kernels.h"

namespace icam::llm::avx2 {
namespace {

// A kernel for a fixed number of activation rows; x is the first row, rows x_stride bytes apart.
using ColumnsFn = void (*)(int64_t n, const void* w, const uint8_t* x, size_t x_stride, float* out);

__m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The sum of the eight int32 lanes, exactly.
int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

float half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}

template <typename Block>
const Block* activation_row(const uint8_t* x, size_t x_stride, int c) {
  return reinterpret_cast<const Block*>(x + c * x_stride);
}

// ---- Float formats ------------------------------------------------------------------------------

// Each float format: its element type, a load of 8 elements as floats and of a single one.
struct F32Format {
  using Element = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float load1(const float* p) { return *p; }
};

struct F16Format {
  using Element = uint16_t;
  static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float load1(const uint16_t* p) { return half_to_float(*p); }
};

struct BF16Format {
  using Element = uint16_t;
  static __m256 load8(const uint16_t* p) {
    const __m128i narrow = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(narrow), 16));
  }
  static float load1(const uint16_t* p) {
    const uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};

// Two accumulators per row, 16 elements per step, hide the FMA latency when nx is small.
template <int NX, typename Format>
void dot_float_cols(int64_t n, const void* w, const uint8_t* x, size_t x_stride, float* out) {
  using Element = typename Format::Element;
  const auto* row = static_cast<const Element*>(w);
  const Element* act[NX];
  __m256 acc0[NX], acc1[NX];
  for (int c = 0; c < NX; ++c) {
    act[c] = activation_row<Element>(x, x_stride, c);
    acc0[c] = _mm256_setzero_ps();
    acc1[c] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m256 w0 = Format::load8(row + k);
    const __m256 w1 = Format::load8(row + k + 8);
    for (int c = 0; c < NX; ++c) {
      acc0[c] = _mm256_fmadd_ps(w0, Format::load8(act[c] + k), acc0[c]);
      acc1[c] = _mm256_fmadd_ps(w1, Format::load8(act[c] + k + 8), acc1[c]);
    }
  }
  for (; k + 8 <= n; k += 8) {
    const __m256 w0 = Format::load8(row + k);
    for (int c = 0; c < NX; ++c) acc0[c] = _mm256_fmadd_ps(w0, Format::load8(act[c] + k), acc0[c]);
  }
  for (int c = 0; c < NX; ++c) {
    float sum = hsum_ps(_mm256_add_ps(acc0[c], acc1[c]));
    for (int64_t t = k; t < n; ++t) sum += Format::load1(row + t) * Format::load1(act[c] + t);
    out[c] = sum;
  }
}

// ---- 32-element blocks against Q8_0 activation rows --------------------------------------------

// Each 32-element format: its block, its codes prepared once per block for all activation rows,
// and the int32 partial sums (8 lanes) of one block's codes times 32 activation codes. Q4_0 and
// Q5_0 keep their codes unsigned (0..15, 0..31), which vpmaddubsw takes directly, and subtract
// kOffset * (sum of activation codes) later from the activation's scaled sums; Q8_0 codes are
// signed, so |q| goes in as the unsigned operand and q's sign moves onto the activations.

// Low nibbles are elements 0-15, high nibbles 16-31.
__m256i nibbles_32(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(15));
}

struct Q8_0Format {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 0;
  struct Codes {
    __m256i magnitude;
    __m256i sign;
  };
  static Codes codes(const BlockQ8_0& block) {
    const __m256i q = load256(block.qs);
    return {_mm256_sign_epi8(q, q), q};
  }
  static __m256i dot(const Codes& q, const int8_t* a) {
    const __m256i a_signed = _mm256_sign_epi8(load256(a), q.sign);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q.magnitude, a_signed), _mm256_set1_epi16(1));
  }
};

struct Q4_0Format {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 8;
  using Codes = __m256i;
  static Codes codes(const BlockQ4_0& block) { return nibbles_32(block.qs); }
  static __m256i dot(Codes q, const int8_t* a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, load256(a)), _mm256_set1_epi16(1));
  }
};

// Bit j of qh becomes bit 4 of byte j: each byte gets the qh byte holding its bit, then tests it.
struct Q5_0Format {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 16;
  using Codes = __m256i;
  static Codes codes(const BlockQ5_0& block) {
    uint32_t high;
    std::memcpy(&high, block.qh, sizeof high);
    const __m256i spread_index =
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i spread =
        _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(high)), spread_index);
    const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
    const __m256i is_set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_or_si256(nibbles_32(block.qs), _mm256_and_si256(is_set, _mm256_set1_epi8(16)));
  }
  static __m256i dot(Codes q, const int8_t* a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, load256(a)), _mm256_set1_epi16(1));
  }
};

// The fp16 scales of `count` (1 to 8) consecutive blocks as floats; lanes past count are 0.
template <typename Block>
__m256 block_scales(const Block* blocks, int count) {
  __m128i halves = _mm_setzero_si128();
  switch (count) {  // vpinsrw takes its lane as an immediate
    case 8:
      halves = _mm_insert_epi16(halves, blocks[7].d, 7);
      [[fallthrough]];
    case 7:
      halves = _mm_insert_epi16(halves, blocks[6].d, 6);
      [[fallthrough]];
    case 6:
      halves = _mm_insert_epi16(halves, blocks[5].d, 5);
      [[fallthrough]];
    case 5:
      halves = _mm_insert_epi16(halves, blocks[4].d, 4);
      [[fallthrough]];
    case 4:
      halves = _mm_insert_epi16(halves, blocks[3].d, 3);
      [[fallthrough]];
    case 3:
      halves = _mm_insert_epi16(halves, blocks[2].d, 2);
      [[fallthrough]];
    case 2:
      halves = _mm_insert_epi16(halves, blocks[1].d, 1);
      [[fallthrough]];
    default:
      halves = _mm_insert_epi16(halves, blocks[0].d, 0);
  }
  return _mm256_cvtph_ps(halves);
}

// Loads `count` (<= 8) floats; lanes past count are 0.
__m256 load_floats(const float* p, int count) {
  if (count == 8) return _mm256_loadu_ps(p);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lane));
}

// Lane k: the sum of the eight int32 lanes of v[k], exactly (integer adds in any order).
__m256i sum_lanes_epi32(const __m256i (&v)[8]) {
  // After two rounds of pairwise adds, lane j of each 128-bit half holds vector j's (or j + 4's)
  // partial sum over that half; the halves are then added.
  const __m256i h0123 =
      _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i h4567 =
      _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                          _mm256_permute2x128_si256(h0123, h4567, 0x31));
}

// Works in groups of 8 blocks, with the numerics of kernels.h: each block's exact integer sum
// s_b (the unsigned codes' offset taken off as kOffset * code_sum[b]), then, block after block,
// acc = fma(d_w[b] * d_x[b], s_b, acc) in scalar float. The weight block is unpacked once for all
// activation rows; the per-block lane sums and scales go through vectors 8 blocks at a time, and
// only the (inherently sequential) accumulation is scalar.
template <int NX, typename Format>
void dot_blocks32_cols(int64_t n, const void* w, const uint8_t* x, size_t x_stride, float* out) {
  const auto* row = static_cast<const typename Format::Block*>(w);
  const int64_t blocks = n / kBlock32;
  const int8_t* codes[NX];
  const float* scales[NX];
  const int32_t* code_sums[NX];
  float acc[NX];
  for (int c = 0; c < NX; ++c) {
    codes[c] = reinterpret_cast<const int8_t*>(x + c * x_stride);
    scales[c] = reinterpret_cast<const float*>(codes[c] + blocks * kBlock32);
    code_sums[c] = reinterpret_cast<const int32_t*>(scales[c] + blocks);
    acc[c] = 0.0f;
  }
  for (int64_t g = 0; g < blocks; g += 8) {
    const int count = static_cast<int>(blocks - g < 8 ? blocks - g : 8);
    __m256i lanes[NX][8];
    for (int k = 0; k < 8; ++k) {
      if (k >= count) {
        for (int c = 0; c < NX; ++c) lanes[c][k] = _mm256_setzero_si256();
        continue;
      }
      const auto q = Format::codes(row[g + k]);
      for (int c = 0; c < NX; ++c) lanes[c][k] = Format::dot(q, codes[c] + (g + k) * kBlock32);
    }
    const __m256 dw = block_scales(row + g, count);
    for (int c = 0; c < NX; ++c) {
      __m256i sums = sum_lanes_epi32(lanes[c]);
      if constexpr (Format::kOffset != 0) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i code_sum = _mm256_maskload_epi32(
            code_sums[c] + g, _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lane));
        sums = _mm256_sub_epi32(sums,
                                _mm256_mullo_epi32(code_sum, _mm256_set1_epi32(Format::kOffset)));
      }
      alignas(32) float s[8], d[8];
      _mm256_store_ps(s, _mm256_cvtepi32_ps(sums));
      _mm256_store_ps(d, _mm256_mul_ps(dw, load_floats(scales[c] + g, count)));
      for (int k = 0; k < count; ++k) acc[c] = __builtin_fmaf(d[k], s[k], acc[c]);
    }
  }
  for (int c = 0; c < NX; ++c) out[c] = acc[c];
}

// ---- K-quants against Q8_K ---------------------------------------------------------------------

// The eight 6-bit scales and mins of a Q4_K/Q5_K block as bytes (see k_scales.h for the packing),
// widened to int16: scales16 holds scale s in lane s of both halves; mins16 holds min s in lanes
// 2s and 2s + 1, matching the activation's bsums (two per sub-block of 32).
struct KScales {
  __m256i scales16;
  __m256i mins16;
};

KScales unpack_k_scales(const uint8_t packed[12]) {
  uint32_t word[3];
  std::memcpy(word, packed, sizeof word);
  const uint32_t scales_lo = word[0] & 0x3f3f3f3fu;
  const uint32_t mins_lo = word[1] & 0x3f3f3f3fu;
  const uint32_t scales_hi = (word[2] & 0x0f0f0f0fu) | ((word[0] >> 2) & 0x30303030u);
  const uint32_t mins_hi = ((word[2] >> 4) & 0x0f0f0f0fu) | ((word[1] >> 2) & 0x30303030u);
  const __m128i scales8 =
      _mm_setr_epi32(static_cast<int>(scales_lo), static_cast<int>(scales_hi), 0, 0);
  const __m128i mins8 = _mm_setr_epi32(static_cast<int>(mins_lo), static_cast<int>(mins_hi), 0, 0);
  KScales out;
  out.scales16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scales8));
  out.mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8));
  return out;
}

// Lane-wide broadcast of int16 scale s (s < 8) from a vector holding scales 0-7 in each half.
__m256i broadcast_scale(__m256i scales16, int s) {
  const short pick = static_cast<short>((2 * s) | ((2 * s + 1) << 8));
  return _mm256_shuffle_epi8(scales16, _mm256_set1_epi16(pick));
}

// Q4_K (kHighBits false) and Q5_K (true) share everything but the fifth bit.
template <int NX, typename Block, bool kHighBits>
void dot_k_scale_min_cols(int64_t n, const void* w, const uint8_t* x, size_t x_stride, float* out) {
  const auto* row = static_cast<const Block*>(w);
  const BlockQ8_K* act[NX];
  float sum[NX];
  for (int c = 0; c < NX; ++c) {
    act[c] = activation_row<BlockQ8_K>(x, x_stride, c);
    sum[c] = 0.0f;
  }
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m256i bit4 = _mm256_set1_epi8(16);
  const int64_t blocks = n / kBlock256;
  for (int64_t b = 0; b < blocks; ++b) {
    const Block& block = row[b];
    const KScales k = unpack_k_scales(block.scales);
    __m256i high = _mm256_setzero_si256();
    if constexpr (kHighBits) high = load256(block.qh);
    __m256i acc[NX];
    for (int c = 0; c < NX; ++c) acc[c] = _mm256_setzero_si256();
    for (int chunk = 0; chunk < 4; ++chunk) {
      // Chunk c: low nibbles are sub-block 2c, high nibbles 2c + 1 (bits 2c and 2c + 1 of qh).
      const __m256i raw = load256(block.qs + 32 * chunk);
      __m256i q_lo = _mm256_and_si256(raw, low4);
      __m256i q_hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
      if constexpr (kHighBits) {
        q_lo = _mm256_or_si256(q_lo, _mm256_and_si256(_mm256_slli_epi16(high, 4), bit4));
        q_hi = _mm256_or_si256(q_hi, _mm256_and_si256(_mm256_slli_epi16(high, 3), bit4));
        high = _mm256_srli_epi16(high, 2);
      }
      const __m256i scale_lo = broadcast_scale(k.scales16, 2 * chunk);
      const __m256i scale_hi = broadcast_scale(k.scales16, 2 * chunk + 1);
      for (int c = 0; c < NX; ++c) {
        const int8_t* a = act[c][b].qs + 64 * chunk;
        const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, load256(a)), scale_lo);
        const __m256i p_hi =
            _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, load256(a + 32)), scale_hi);
        acc[c] = _mm256_add_epi32(acc[c], _mm256_add_epi32(p_lo, p_hi));
      }
    }
    const float d_w = half_to_float(block.d);
    const float dmin_w = half_to_float(block.dmin);
    for (int c = 0; c < NX; ++c) {
      const BlockQ8_K& a = act[c][b];
      const int offset = hsum_epi32(_mm256_madd_epi16(load256(a.bsums), k.mins16));
      sum[c] = __builtin_fmaf(d_w * a.d, static_cast<float>(hsum_epi32(acc[c])), sum[c]);
      sum[c] = __builtin_fmaf(-(dmin_w * a.d), static_cast<float>(offset), sum[c]);
    }
  }
  for (int c = 0; c < NX; ++c) out[c] = sum[c];
}

// Q6_K: codes q in 0..63 go to vpmaddubsw unsigned; the -32 offset is applied once per
// super-block as 32 * sum_g scale_g * bsum_g, since the 16-element scale groups are exactly the
// activation's bsums groups.
template <int NX>
void dot_q6_k_cols(int64_t n, const void* w, const uint8_t* x, size_t x_stride, float* out) {
  const auto* row = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* act[NX];
  float sum[NX];
  for (int c = 0; c < NX; ++c) {
    act[c] = activation_row<BlockQ8_K>(x, x_stride, c);
    sum[c] = 0.0f;
  }
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m256i bits45 = _mm256_set1_epi8(0x30);
  const int64_t blocks = n / kBlock256;
  for (int64_t b = 0; b < blocks; ++b) {
    const BlockQ6_K& block = row[b];
    const __m128i scales8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.scales));
    __m256i acc[NX];
    for (int c = 0; c < NX; ++c) acc[c] = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const __m256i ql0 = load256(block.ql + 64 * half);
      const __m256i ql1 = load256(block.ql + 64 * half + 32);
      const __m256i qh = load256(block.qh + 32 * half);
      // Quarter r of the half takes its high bits from bits 2r and 2r + 1 of qh, moved to 4-5.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                          _mm256_and_si256(qh, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45)),
      };
      for (int r = 0; r < 4; ++r) {
        // Elements 0-15 of the quarter use scale 2g, 16-31 scale 2g + 1 (g = 4 * half + r):
        // one scale per 128-bit half of the int16 products.
        const int g = 4 * half + r;
        const __m128i pick =
            _mm_set_epi64x(static_cast<int64_t>(0x0101010101010101ull * (2 * g + 1)),
                           static_cast<int64_t>(0x0101010101010101ull * (2 * g)));
        const __m256i scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, pick));
        for (int c = 0; c < NX; ++c) {
          const int8_t* a = act[c][b].qs + 128 * half + 32 * r;
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], load256(a)), scale);
          acc[c] = _mm256_add_epi32(acc[c], p);
        }
      }
    }
    const __m256i scales16 = _mm256_cvtepi8_epi16(scales8);
    const float d_w = half_to_float(block.d);
    for (int c = 0; c < NX; ++c) {
      const BlockQ8_K& a = act[c][b];
      const __m256i offset = _mm256_madd_epi16(load256(a.bsums), scales16);
      const __m256i dot = _mm256_sub_epi32(acc[c], _mm256_slli_epi32(offset, 5));
      sum[c] = __builtin_fmaf(d_w * a.d, static_cast<float>(hsum_epi32(dot)), sum[c]);
    }
  }
  for (int c = 0; c < NX; ++c) out[c] = sum[c];
}

// ---- Entry points ------------------------------------------------------------------------------

void run(const ColumnsFn (&by_count)[kMaxDotCols], int64_t n, const void* w, const void* x,
         size_t x_stride, int nx, float* out) {
  by_count[nx - 1](n, w, static_cast<const uint8_t*>(x), x_stride, out);
}

template <typename Format>
constexpr ColumnsFn kFloatKernels[kMaxDotCols] = {
    dot_float_cols<1, Format>, dot_float_cols<2, Format>, dot_float_cols<3, Format>,
    dot_float_cols<4, Format>};

template <typename Format>
constexpr ColumnsFn kBlocks32Kernels[kMaxDotCols] = {
    dot_blocks32_cols<1, Format>, dot_blocks32_cols<2, Format>, dot_blocks32_cols<3, Format>,
    dot_blocks32_cols<4, Format>};

template <typename Block, bool kHighBits>
constexpr ColumnsFn kScaleMinKernels[kMaxDotCols] = {
    dot_k_scale_min_cols<1, Block, kHighBits>, dot_k_scale_min_cols<2, Block, kHighBits>,
    dot_k_scale_min_cols<3, Block, kHighBits>, dot_k_scale_min_cols<4, Block, kHighBits>};

constexpr ColumnsFn kQ6KKernels[kMaxDotCols] = {dot_q6_k_cols<1>, dot_q6_k_cols<2>,
                                                dot_q6_k_cols<3>, dot_q6_k_cols<4>};

}  // namespace

void dot_f32(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kFloatKernels<F32Format>, n, w, x, x_stride, nx, out);
}

void dot_f16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kFloatKernels<F16Format>, n, w, x, x_stride, nx, out);
}

void dot_bf16(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kFloatKernels<BF16Format>, n, w, x, x_stride, nx, out);
}

void dot_q8_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kBlocks32Kernels<Q8_0Format>, n, w, x, x_stride, nx, out);
}

void dot_q5_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kBlocks32Kernels<Q5_0Format>, n, w, x, x_stride, nx, out);
}

void dot_q4_0(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kBlocks32Kernels<Q4_0Format>, n, w, x, x_stride, nx, out);
}

void dot_q4_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kScaleMinKernels<BlockQ4_K, false>, n, w, x, x_stride, nx, out);
}

void dot_q5_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kScaleMinKernels<BlockQ5_K, true>, n, w, x, x_stride, nx, out);
}

void dot_q6_k(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out) {
  run(kQ6KKernels, n, w, x, x_stride, nx, out);
}

}  // namespace icam::llm::avx2
