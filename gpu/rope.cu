#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

// One thread per (row, head, pair).
__global__ void rope_kernel(float* x, int64_t total, int n_heads, int head_dim,
                            const float* cos_sin, bool halves, float post_scale) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= total) return;
  const int half = head_dim / 2;
  const int i = static_cast<int>(t % half);
  const int64_t head_row = t / half;  // row * n_heads + head
  const int64_t row = head_row / n_heads;
  float* v = x + head_row * head_dim;
  const float c = cos_sin[row * head_dim + i];
  const float s = cos_sin[row * head_dim + half + i];
  const int a = halves ? i : 2 * i;
  const int b = halves ? i + half : 2 * i + 1;
  const float x0 = v[a], x1 = v[b];
  // As the CPU: rotate, round to float, then scale.
  float r0 = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
  float r1 = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
  if (post_scale != 1.0f) {
    r0 *= post_scale;
    r1 *= post_scale;
  }
  v[a] = r0;
  v[b] = r1;
}

}  // namespace

Status rope(float* x, int64_t rows, int n_heads, int head_dim, const float* cos_sin,
            RopePairing pairing, float post_scale, StreamHandle stream) {
  if (head_dim % 2 != 0)
    return make_error(Errc::invalid_argument, "rope: head_dim ", head_dim, " is odd");
  const int64_t total = rows * n_heads * (head_dim / 2);
  if (total == 0) return ok_status();
  const int threads = 256;
  rope_kernel<<<detail::blocks_for(total, threads), threads, 0, stream>>>(
      x, total, n_heads, head_dim, cos_sin, pairing == RopePairing::halves, post_scale);
  return detail::launch_status("rope_kernel");
}

}  // namespace icam::gpu
