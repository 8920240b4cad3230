// AVX2 dot products of packed groups of 8 weight rows (packed_layout.h) with up to
// kMaxPackedCols Q8_0 activation rows.
//
// Compiled with AVX2 flags: only call through the dispatch in kernel_table.cpp; internal helpers
// only, no standard-library templates (see vec_dot_avx2.cpp). The kernels themselves are in
// packed_dot_kernels.inc, shared with the VNNI variants (packed_dot_avxvnni.cpp, packed_dot_avx512vnni.cpp).
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

// vpmaddubsw (pairs of byte products, 16-bit) then vpmaddwd with ones (pairs of those, 32-bit).
__m256i dot4(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

}  // namespace

#include "drivers/llm/quant/packed_dot_kernels.inc"

}  // namespace icam::llm::avx2
