#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t total, int64_t dim) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < total) y[i] += bias[i % dim];
}

constexpr int kThreads = 256;

}  // namespace

Status add_in_place(float* x, const float* y, int64_t n, StreamHandle stream) {
  if (n <= 0) return ok_status();
  add_kernel<<<detail::blocks_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  return detail::launch_status("add_kernel");
}

Status add_bias(float* y, const float* bias, int64_t rows, int64_t dim, StreamHandle stream) {
  const int64_t total = rows * dim;
  if (total <= 0) return ok_status();
  add_bias_kernel<<<detail::blocks_for(total, kThreads), kThreads, 0, stream>>>(y, bias, total,
                                                                                dim);
  return detail::launch_status("add_bias_kernel");
}

}  // namespace icam::gpu
