// Which kernel serves which format, per instruction set, and the run-time choice between them.
// Internal to icam_llm_quant and its tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/thread_pool.h"
#include "drivers/llm/gguf/ggml_type.h"
#include "drivers/llm/quant/kernels.h"
#include "drivers/llm/quant/packed_layout.h"

namespace icam::llm {

// The layouts matmul converts activation rows to before the dot products: ggml's "vec-dot type"
// of each weight type. q8_0 is the planar Q8_0 row described in kernels.h, q8_k rows of
// BlockQ8_K, f16/bf16 rows of 16-bit floats, f32 the caller's floats as they are.
enum class ActivationFormat { f32, f16, bf16, q8_0, q8_k };
inline constexpr int kActivationFormats = 5;

// Bytes of one activation row of n elements (whole blocks).
size_t activation_row_bytes(ActivationFormat f, int64_t n);

struct ActivationKernels {
  QuantizeFn quantize = nullptr;      // floats -> this layout; null for f32 (used as it is)
  DequantizeFn dequantize = nullptr;  // this layout -> floats
};

struct FormatKernels {
  DequantizeFn dequantize = nullptr;                     // null: icam has no kernels for the type
  DotFn dot = nullptr;                                   // null: not a matmul weight type (Q8_K)
  ActivationFormat activations = ActivationFormat::f32;  // what `dot` takes as activations
  // Dot products on the packed layout (packed_layout.h); null: the type is not packed.
  PackedDotFn packed_dot = nullptr;
  // The same on two groups at once (16 rows), where the CPU has a faster kernel for that; null:
  // packed_dot on each group.
  PackedDotPairFn packed_dot_pair = nullptr;
  // The most activation rows one packed_dot_pair call takes (up to kMaxPackedPairCols).
  int packed_pair_cols = kMaxPackedCols;
};

// Type ids run from 0 to 30 (BF16); the table has a slot for each, empty for unsupported ones.
inline constexpr int kTypeSlots = 31;

struct KernelTable {
  FormatKernels formats[kTypeSlots];
  ActivationKernels activations[kActivationFormats];

  // The kernels for t; all members null when icam has none.
  const FormatKernels& operator[](GgmlType t) const;
  const ActivationKernels& operator[](ActivationFormat f) const;
};

// The portable kernels.
const KernelTable& scalar_kernels();
// The AVX2 kernels (with scalar ones where no AVX2 version exists), or null unless use_avx2().
const KernelTable* avx2_kernels();
// True when the 512-bit packed kernels (avx512::packed_dot_pair_*) may run on this CPU:
// AVX512F, BW, VL and VNNI with the OS saving the AVX-512 state. ICAM_NO_AVX512=1 in the
// environment (use_avx512(), common/cpu_features.h) keeps the 512-bit kernels out of the active
// table, leaving the 256-bit ones (for A/B comparisons), but does not change this answer.
bool cpu_has_avx512_packed();
// avx2_kernels() when available, otherwise scalar_kernels(); decided once.
const KernelTable& active_kernels();

// matmul (quant.h) with the kernels of `table`, on `pool` or, when pool is null, on the calling
// thread. matmul and matmul_reference are this with active_kernels() and scalar_kernels(); the
// speed test uses it to time both sets under the same conditions.
void matmul_with_kernels(const KernelTable& table, ThreadPool* pool, GgmlType wtype, const void* w,
                         int64_t rows, int64_t cols, const float* x, int64_t batch, float* y,
                         int64_t ldy);

// What a caller of the public API is about to do with a format.
enum class KernelUse { quantize, dequantize, dot };

// The kernels of t in `table` after checking the caller's contract: t supports `use` and n
// elements are whole blocks. A violation is a programmer error: prints `caller` and the problem to
// stderr and aborts.
const FormatKernels& checked_kernels(const KernelTable& table, const char* caller, GgmlType t,
                                     int64_t n, KernelUse use);

}  // namespace icam::llm
