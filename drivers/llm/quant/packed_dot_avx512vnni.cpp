// The packed-group kernels of packed_dot_avx2.cpp with the four byte products of each lane summed
// by one VNNI instruction (vpdpbusd, the EVEX encoding (AVX512-VNNI with AVX512VL: Intel Ice Lake and later, AMD Zen 4)) instead of vpmaddubsw + vpmaddwd: the same integers,
// so the same results bit for bit, with one instruction fewer per 32 multiply-adds and activation
// row. Compiled with its own flags (CMakeLists.txt) and called only through the dispatch in
// kernel_table.cpp on CPUs that have the instruction.
#include <immintrin.h>

#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/packed_layout.h"

namespace icam::llm::avx512vnni {
namespace {

__m256i dot4_add(__m256i acc, __m256i u, __m256i s) {
  return _mm256_dpbusd_epi32(acc, u, s);
}

}  // namespace

#include "drivers/llm/quant/packed_dot_kernels.inc"

}  // namespace icam::llm::avx512vnni
