// L0: the weight layouts the CUDA kernels read, described without drivers/llm types. The values
// are the GGUF (ggml) type ids, so the engine converts with a cast after checking
// weight_format_supported(); the byte layouts are those of drivers/llm/quant/block_formats.h,
// restated in gpu/dequantize.cuh.
#pragma once

#include <cstdint>

namespace icam::gpu {

enum class WeightFormat : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q5_0 = 6,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

// True for the ids above.
bool weight_format_supported(uint32_t ggml_type_id);

// Elements per block (1 for the float types) and bytes per block.
int weight_block_elems(WeightFormat f);
int weight_block_bytes(WeightFormat f);
// Bytes of one row of `cols` elements (cols a multiple of the block size).
uint64_t weight_row_bytes(WeightFormat f, int64_t cols);

// A row-major matrix in device memory: `rows` rows of `cols` elements in format `format`.
struct DeviceWeight {
  WeightFormat format = WeightFormat::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

}  // namespace icam::gpu
