#include <cmath>

#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

constexpr int kThreads = 256;

// (value, index) b beats a when larger, or equal with a lower index; NaN never beats a number.
__device__ __forceinline__ bool better(float bv, int64_t bi, float av, int64_t ai) {
  if (isnan(bv)) return false;
  if (isnan(av)) return true;
  return bv > av || (bv == av && bi < ai);
}

__global__ void argmax_kernel(const float* x, int64_t n, int32_t* out) {
  __shared__ float best_v[kThreads];
  __shared__ int64_t best_i[kThreads];
  const float* row = x + static_cast<int64_t>(blockIdx.x) * n;
  float bv = NAN;
  int64_t bi = n;  // "none yet": loses every tie
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if (better(row[i], i, bv, bi)) {
      bv = row[i];
      bi = i;
    }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const int o = threadIdx.x + stride;
      if (better(best_v[o], best_i[o], best_v[threadIdx.x], best_i[threadIdx.x])) {
        best_v[threadIdx.x] = best_v[o];
        best_i[threadIdx.x] = best_i[o];
      }
    }
    __syncthreads();
  }
  // A row of NaNs only: index 0.
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<int32_t>(best_i[0] < n ? best_i[0] : 0);
}

}  // namespace

Status argmax_rows(const float* x, int64_t rows, int64_t n, int32_t* out, StreamHandle stream) {
  if (rows <= 0 || n <= 0) return ok_status();
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, n, out);
  return detail::launch_status("argmax_kernel");
}

}  // namespace icam::gpu
