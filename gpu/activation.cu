#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

// The CPU's definitions (drivers/llm/engine/ops.cpp), with CUDA's accurate tanhf and expf.
__device__ __forceinline__ float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  constexpr float kCoef = 0.044715f;
  return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * x * (1.0f + kCoef * x * x)));
}

__device__ __forceinline__ float silu(float x) {
  return x / (1.0f + expf(-x));
}

__global__ void gated_kernel(const float* gate, const float* up, float* out, int64_t n, bool gelu) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  out[i] = (gelu ? gelu_tanh(g) : silu(g)) * up[i];
}

}  // namespace

Status gated_activation(const float* gate, const float* up, float* out, int64_t n,
                        GatedActivation act, StreamHandle stream) {
  if (n <= 0) return ok_status();
  const int threads = 256;
  gated_kernel<<<detail::blocks_for(n, threads), threads, 0, stream>>>(
      gate, up, out, n, act == GatedActivation::gelu_tanh);
  return detail::launch_status("gated_kernel");
}

}  // namespace icam::gpu
