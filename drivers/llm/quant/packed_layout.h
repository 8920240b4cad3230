// The packed weight layouts (see packed.h): groups of 8 rows, interleaved so that one 32-byte
// vector holds 4 consecutive elements of each of the 8 rows. Internal to icam_llm_quant and its
// tests; declarations and constants only, safe to include from AVX2 translation units.
//
// A group of 8 rows of n elements (nb = n / 32 blocks) is, for both formats:
//   uint16_t d[nb][8];            the fp16 block scales, row r of block b at d[b][r]
//   (padding to a multiple of 32 bytes)
//   the codes, block after block:
//     Q8_0: int8_t qs[nb][8][32]; chunk k (elements 4k .. 4k+3 of the block) of every row:
//           qs[b][k][4r + e] = code 4k + e of row r
//     Q5_0: uint8_t qh[nb][32];    bit k of qh[b][4r + e] = bit 4 of code 4k + e of row r
//           uint8_t qs[nb][4][32]; qs[b][p][4r + e] = low 4 bits of code 8p + e of row r
//                                  | low 4 bits of code 8p + 4 + e << 4 (chunks 2p and 2p + 1)
//   (padding to a multiple of 64 bytes)
// The sizes are those of the GGUF blocks (34 and 22 bytes per 32 elements) plus the padding.
//
// The K-quants (super-blocks of 256 elements, nb = n / 256) are laid out super-block after
// super-block, each packed_q4_k_block_bytes() / packed_q6_k_block_bytes() long, and the group
// padded to a multiple of 64 bytes. Chunk k of a 32-element (Q4_K) or 32-element quarter (Q6_K)
// run is its elements 4k .. 4k+3; a code vector holds one chunk of each of the 8 rows, byte 4r + e
// for element 4k + e of row r:
//   Q4_K: uint16_t d[8], dmin[8];          (32 bytes)
//         uint8_t scale[8][8], min[8][8];  [sub-block s][row r], the 6-bit values of k_scales.h
//         uint8_t qs[4][8][32];            [p][k]: low nibble = sub-block 2p, high = 2p + 1
//   Q6_K: uint16_t d[8]; (16 bytes of padding)
//         int8_t scale[16][8];             [sub-block of 16][row]
//         uint8_t ql[4][8][32];            [p][k]: low 4 bits of quarter 2p (low nibble) and
//                                          quarter 2p + 1 (high nibble); quarter g = elements
//                                          32g .. 32g+31
//         uint8_t qh[2][8][32];            [h][k]: bits 2j, 2j + 1 = bits 4-5 of quarter 4h + j
// (8 x 148 and 8 x 212 bytes: the GGUF 144 and 210 plus scales as bytes and padding.)
#pragma once

#include <cstddef>
#include <cstdint>

namespace icam::llm {

inline constexpr int kPackRows = 8;
// The most activation rows one packed kernel call takes.
inline constexpr int kMaxPackedCols = 4;
// The most one pair kernel call may take (FormatKernels::packed_pair_cols says how many a given
// one does): the 512-bit Q8_0 and Q5_0 kernels keep a block's weights in registers for 8 rows.
inline constexpr int kMaxPackedPairCols = 8;

// The dot products of the 8 rows of one packed group (n elements each) with nx activation rows
// (1 <= nx <= kMaxPackedCols) in the Q8_0 activation layout (kernels.h), activation row c at
// x + c * x_stride: out[8 * c + r] = sum_k W[r][k] * X_c[k]. Each row's result is bit-identical
// to the scalar reference dot product of that row.
using PackedDotFn = void (*)(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride,
                             int nx, float* out);

// As PackedDotFn for two consecutive groups (16 rows), the second group_bytes after the first,
// and up to FormatKernels::packed_pair_cols activation rows: out[16 * c + r] for rows r = 0..7
// of the first group and 8 + r of the second. Bit-identical to two PackedDotFn calls.
using PackedDotPairFn = void (*)(int64_t n, const uint8_t* group, size_t group_bytes,
                                 const uint8_t* x, size_t x_stride, int nx, float* out);

// Bytes of the scale table at the start of a group, padding included.
constexpr size_t packed_scale_bytes(int64_t blocks) {
  return (static_cast<size_t>(blocks) * 2 * kPackRows + 31) & ~size_t{31};
}

// Bytes of the codes of one block of 8 rows.
constexpr size_t packed_q8_0_block_bytes() {
  return 32 * kPackRows;
}
constexpr size_t packed_q5_0_block_bytes() {
  return 20 * kPackRows;
}

constexpr size_t packed_q4_k_block_bytes() {
  return 32 + 2 * 64 + 4 * 8 * 32;
}
constexpr size_t packed_q6_k_block_bytes() {
  return 32 + 128 + 4 * 8 * 32 + 2 * 8 * 32;
}

// One set per instruction set (packed_dot_*.cpp); all give bit-identical results.
#define ICAM_PACKED_DOT_DECLARATIONS                                                              \
  void packed_dot_q8_0(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx, \
                       float* out);                                                               \
  void packed_dot_q5_0(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx, \
                       float* out);
namespace avx2 {
ICAM_PACKED_DOT_DECLARATIONS
}  // namespace avx2
// The K-quants (activations in Q8_K rows), AVX2 only (vpmaddubsw + vpmaddwd with the scales).
namespace avx2 {
void packed_dot_q4_k(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx,
                     float* out);
void packed_dot_q6_k(int64_t n, const uint8_t* group, const uint8_t* x, size_t x_stride, int nx,
                     float* out);
}  // namespace avx2
namespace avxvnni {
ICAM_PACKED_DOT_DECLARATIONS
}  // namespace avxvnni
namespace avx512vnni {
ICAM_PACKED_DOT_DECLARATIONS
}  // namespace avx512vnni
#undef ICAM_PACKED_DOT_DECLARATIONS
// 512-bit kernels (AVX512F/BW/VL + AVX512-VNNI): two groups per call.
namespace avx512 {
void packed_dot_pair_q8_0(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out);
void packed_dot_pair_q5_0(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out);
void packed_dot_pair_q4_k(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out);
void packed_dot_pair_q6_k(int64_t n, const uint8_t* group, size_t group_bytes, const uint8_t* x,
                          size_t x_stride, int nx, float* out);
}  // namespace avx512

}  // namespace icam::llm
