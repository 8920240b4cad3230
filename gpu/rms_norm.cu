#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

constexpr int kMaxThreads = 256;

// One block per row. Pass 1 sums squares in double; pass 2 scales. Each thread writes only the
// elements it read, after the block-wide sum, so out may alias x.
__global__ void rms_norm_kernel(const float* x, const int32_t* row_index, const float* weight,
                                float* out, int n, float eps) {
  __shared__ double warp_sums[kMaxThreads / 32];
  const int64_t src_row = row_index ? row_index[blockIdx.x] : blockIdx.x;
  const float* row = x + src_row * n;
  float* dst = out + static_cast<int64_t>(blockIdx.x) * n;
  double sum = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) sum += static_cast<double>(row[i]) * row[i];
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = sum;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += warp_sums[w];
  const float scale = 1.0f / sqrtf(static_cast<float>(total / n) + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = row[i] * scale * weight[i];
}

Status launch(const float* x, const int32_t* row_index, const float* weight, float* out,
              int64_t rows, int n, float eps, StreamHandle stream) {
  if (rows <= 0) return ok_status();
  // Whole warps (the shuffle reduction needs them), no more than the row needs.
  const int threads = n >= kMaxThreads ? kMaxThreads : (n + 31) / 32 * 32;
  rms_norm_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, row_index, weight, out, n,
                                                                       eps);
  return detail::launch_status("rms_norm_kernel");
}

}  // namespace

Status rms_norm(const float* x, const float* weight, float* out, int64_t rows, int n, float eps,
                StreamHandle stream) {
  return launch(x, nullptr, weight, out, rows, n, eps, stream);
}

Status rms_norm_gather(const float* x, const int32_t* row_index, const float* weight, float* out,
                       int64_t rows, int n, float eps, StreamHandle stream) {
  return launch(x, row_index, weight, out, rows, n, eps, stream);
}

}  // namespace icam::gpu
