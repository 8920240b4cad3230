// Quantized weight formats and the CPU matrix product, the engine's hot path.
//
// Formats: F32, F16, BF16, Q8_0, Q5_0, Q4_0, Q4_K, Q5_K, Q6_K, stored exactly as in GGUF files
// (block layouts in block_formats.h). Rows are whole blocks: every `n` below must be a multiple of
// the type's block size (32 for Q*_0, 256 for the K-quants, 1 for the float types).
//
// Numerics follow ggml's CPU backend, so that greedy decoding picks the same tokens as llama.cpp:
// matmul first quantizes the activations to the weight type's "vec-dot type" (Q8_0 for
// Q4_0/Q5_0/Q8_0 weights, Q8_K for the K-quants, F16 for F16, BF16 for BF16, F32 for F32), then
// takes exact integer dot products within each block, scales them by the two block scales and sums
// the blocks in float. (The Q8_0 activations hold the same codes and fp16-rounded scales as
// ggml's Q8_0 blocks, laid out for the kernels; see kernels.h.)
//
// SIMD: AVX2/FMA/F16C kernels are chosen at run time when icam::use_avx2() is true (once, at first
// use); otherwise portable scalar kernels run. Both give the same quantized activations and the
// same integer block sums; the float sums of scaled blocks may differ in the last bits.
//
// Errors: a type without kernels or a length that is not whole blocks is a programmer error; these
// functions print what was wrong and abort. Check is_computable() on types read from files first.
// Thread-safety: all functions may be called from any thread; matmul runs its work on `pool`.
//
// The engine multiplies by weights repacked once at load (packed.h), which gives the same results
// as matmul here, faster; matmul works on GGUF rows as they are.
#pragma once

#include <cstdint>

#include "common/thread_pool.h"
#include "drivers/llm/gguf/ggml_type.h"

namespace icam::llm {

// True for the types listed above, the ones that can be matmul weights and be (de)quantized.
bool is_computable(GgmlType t);

// Converts n elements of type t to floats. Also accepts Q8_K (the activation format).
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);

// Converts n floats to type t: the reference quantizers, written for accuracy rather than speed
// (tests and tiny-model generators use them). Q4_0/Q5_0/Q8_0 round to nearest with the scale set
// by the element of largest magnitude; the K-quants search a few scales (and mins) per sub-block
// for the least squared error, then quantize the sub-block scales to 6 or 8 bits. F16/BF16 round
// to nearest-even. Also accepts Q8_K.
void quantize_row(GgmlType t, const float* src, void* dst, int64_t n);

// y[b * ldy + r] = sum_k W[r][k] * x[b * cols + k] for b < batch, r < rows.
// W is row-major with rows of ggml_row_bytes(wtype, cols) bytes; cols must be whole blocks;
// ldy >= rows; only y[b * ldy + r] for r < rows is written. y must not overlap x or w. Each
// weight row is read from memory once per call whatever the batch, so batched calls cost little
// more than single ones while memory-bound. The result for each (b, r) depends only on W's row r
// and x's row b: not on the pool's size, nor on the batch size or the other rows in the batch.
void matmul(ThreadPool& pool, GgmlType wtype, const void* w, int64_t rows, int64_t cols,
            const float* x, int64_t batch, float* y, int64_t ldy);

// matmul on the calling thread with the scalar kernels only: the reference for tests.
void matmul_reference(GgmlType wtype, const void* w, int64_t rows, int64_t cols, const float* x,
                      int64_t batch, float* y, int64_t ldy);

// The "ideal" dot product of one weight row with float activations: the row is dequantized and
// the products are summed in double, with no activation quantization. For tolerance tests.
float dot_reference_f32(GgmlType wtype, const void* w_row, const float* x, int64_t n);

// IEEE half and bfloat16 conversions, round-to-nearest-even; exact where representable.
// Values of magnitude >= 65520 become infinity in fp16. NaNs stay NaN.
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace icam::llm
