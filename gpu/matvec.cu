#include "gpu/cuda_check.h"
#include "gpu/dequantize.cuh"
#include "gpu/matvec.h"

namespace icam::gpu {
namespace {

constexpr int kWarpsPerBlock = 4;

template <WeightFormat F>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    matvec_kernel(const uint8_t* w, uint64_t row_bytes, int64_t rows, int64_t cols,
                  const float* __restrict__ x, int nb, float* __restrict__ y, int64_t ldy) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const uint8_t* wr = w + static_cast<uint64_t>(row) * row_bytes;
  float acc[kMatvecBatch];
#pragma unroll
  for (int b = 0; b < kMatvecBatch; ++b) acc[b] = 0.0f;

  if constexpr (detail::is_float_format<F>()) {
    // Consecutive lanes read consecutive elements: coalesced.
    for (int64_t k = lane; k < cols; k += 32) {
      const float wv = detail::load_float_element<F>(wr, k);
#pragma unroll
      for (int b = 0; b < kMatvecBatch; ++b)
        if (b < nb) acc[b] += wv * x[b * cols + k];
    }
  } else {
    // Each lane takes whole chunks of 32; neighbouring lanes read neighbouring blocks.
    for (int64_t c = lane; c < cols / 32; c += 32) {
      float v[32];
      detail::dequantize_chunk<F>(wr, c, v);
#pragma unroll
      for (int b = 0; b < kMatvecBatch; ++b) {
        if (b < nb) {
          // cols is a multiple of 32 and x comes from cudaMalloc, so this is 16-byte aligned.
          const float4* xb = reinterpret_cast<const float4*>(x + b * cols + c * 32);
          float s = 0.0f;
#pragma unroll
          for (int q = 0; q < 8; ++q) {
            const float4 xv = xb[q];
            s += v[4 * q] * xv.x + v[4 * q + 1] * xv.y + v[4 * q + 2] * xv.z + v[4 * q + 3] * xv.w;
          }
          acc[b] += s;
        }
      }
    }
  }

#pragma unroll
  for (int b = 0; b < kMatvecBatch; ++b) {
    if (b < nb) {
      float s = acc[b];
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
      if (lane == 0) y[b * ldy + row] = s;
    }
  }
}

}  // namespace

Status matvec(const DeviceWeight& w, const float* x, int64_t batch, float* y, int64_t ldy,
              StreamHandle stream) {
  if (w.cols % weight_block_elems(w.format) != 0 ||
      (weight_block_elems(w.format) > 1 && w.cols % 32 != 0))
    return make_error(Errc::invalid_argument, "matvec: ", w.cols,
                      " columns are not whole blocks of format ", static_cast<int>(w.format));
  if (ldy < w.rows)
    return make_error(Errc::invalid_argument, "matvec: ldy ", ldy, " < rows ", w.rows);
  const auto* data = static_cast<const uint8_t*>(w.data);
  const uint64_t rb = weight_row_bytes(w.format, w.cols);
  const dim3 grid(detail::blocks_for(w.rows, kWarpsPerBlock));
  const int threads = kWarpsPerBlock * 32;
  for (int64_t b0 = 0; b0 < batch; b0 += kMatvecBatch) {
    const int nb = static_cast<int>(batch - b0 < kMatvecBatch ? batch - b0 : kMatvecBatch);
    const float* xb = x + b0 * w.cols;
    float* yb = y + b0 * ldy;
    switch (w.format) {
#define ICAM_CASE(F)                                                               \
  case WeightFormat::F:                                                            \
    matvec_kernel<WeightFormat::F>                                                 \
        <<<grid, threads, 0, stream>>>(data, rb, w.rows, w.cols, xb, nb, yb, ldy); \
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
    ICAM_TRY(detail::launch_status("matvec_kernel"));
  }
  return ok_status();
}

}  // namespace icam::gpu
