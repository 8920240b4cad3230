#include "gpu/cuda_check.h"
#include "gpu/dequantize.cuh"
#include "gpu/dequantize.h"

namespace icam::gpu {
namespace {

using detail::launch_status;

// One block per output row; threads over the row's chunks of 32 (quantized) or its elements
// (float formats). `row_index` maps an output row to a weight row (null: row0 + blockIdx.x).
template <WeightFormat F>
__global__ void dequantize_rows_kernel(const uint8_t* w, uint64_t row_bytes, int64_t cols,
                                       int64_t row0, const int32_t* row_index, float scale,
                                       float* out) {
  const int64_t out_row = blockIdx.x;
  const int64_t r = row_index ? row_index[out_row] : row0 + out_row;
  const uint8_t* row = w + static_cast<uint64_t>(r) * row_bytes;
  float* dst = out + out_row * cols;
  if constexpr (detail::is_float_format<F>()) {
    for (int64_t k = threadIdx.x; k < cols; k += blockDim.x)
      dst[k] = detail::load_float_element<F>(row, k) * scale;
  } else {
    for (int64_t c = threadIdx.x; c < cols / 32; c += blockDim.x) {
      float v[32];
      detail::dequantize_chunk<F>(row, c, v);
#pragma unroll
      for (int l = 0; l < 32; ++l) dst[c * 32 + l] = v[l] * scale;
    }
  }
}

Status launch(const DeviceWeight& w, int64_t row0, int64_t n_rows, const int32_t* row_index,
              float scale, float* out, StreamHandle stream) {
  if (n_rows <= 0) return ok_status();
  if (w.cols % weight_block_elems(w.format) != 0)
    return make_error(Errc::invalid_argument, "dequantize: ", w.cols,
                      " columns are not whole blocks of format ", static_cast<int>(w.format));
  const auto* data = static_cast<const uint8_t*>(w.data);
  const uint64_t rb = weight_row_bytes(w.format, w.cols);
  const dim3 grid(static_cast<unsigned>(n_rows));
  const int threads = 128;
  switch (w.format) {
#define ICAM_CASE(F)                                                                   \
  case WeightFormat::F:                                                                \
    dequantize_rows_kernel<WeightFormat::F>                                            \
        <<<grid, threads, 0, stream>>>(data, rb, w.cols, row0, row_index, scale, out); \
    break;
    ICAM_CASE(F32)
    ICAM_CASE(F16)
    ICAM_CASE(BF16)
    ICAM_CASE(Q8_0)
    ICAM_CASE(Q5_0)
    ICAM_CASE(Q4_0)
    ICAM_CASE(Q4_K)
    ICAM_CASE(Q5_K)
    ICAM_CASE(Q6_K)
#undef ICAM_CASE
  }
  return launch_status("dequantize_rows_kernel");
}

}  // namespace

Status dequantize_rows(const DeviceWeight& w, int64_t row0, int64_t n_rows, float* out,
                       StreamHandle stream) {
  return launch(w, row0, n_rows, nullptr, 1.0f, out, stream);
}

Status embed_rows(const DeviceWeight& w, const int32_t* tokens, int64_t n, float scale, float* out,
                  StreamHandle stream) {
  return launch(w, 0, n, tokens, scale, out, stream);
}

}  // namespace icam::gpu
