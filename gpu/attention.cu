#include <cuda_fp16.h>

#include <cmath>

#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kDimsPerLane = kMaxAttentionHeadDim / 32;

// Block (row, head). Warp w takes positions first + w, first + w + kWarps, ...; lane l holds
// dimensions l, l + 32, ... of q and of its running output. Per key: the warp's lanes form the
// dot product and reduce it with shuffles, then update the online softmax (running max m, running
// sum of exp l, output acc rescaled when m grows). The warps' partial results are merged through
// shared memory at the end.
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const float* q, const uint8_t* pool, KvGeometry geo, int layer,
                     AttentionShape shape, StepRows step, float* out) {
  __shared__ float warp_max[kWarps];
  __shared__ float warp_sum[kWarps];
  __shared__ float warp_acc[kWarps][kMaxAttentionHeadDim];

  const int64_t row = blockIdx.x;
  const int head = blockIdx.y;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int hd = shape.head_dim;
  const int q_dim = shape.n_heads * hd;
  const int kv_head = head / (shape.n_heads / shape.n_kv_heads);
  const int32_t pos = step.pos[row];
  const int32_t first = shape.sliding_window > 0 ? max(0, pos - shape.sliding_window + 1) : 0;
  const int32_t* table = step.pages + step.table_offset[row];

  float qv[kDimsPerLane];
  float acc[kDimsPerLane];
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < hd ? q[row * q_dim + static_cast<int64_t>(head) * hd + d] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY;
  float l = 0.0f;

  const uint64_t head_offset = static_cast<uint64_t>(kv_head) * hd;
  for (int32_t j = first + warp; j <= pos; j += kWarps) {
    const int32_t page = table[j / geo.page_tokens];
    const uint64_t slot = static_cast<uint64_t>(j % geo.page_tokens) * geo.kv_dim + head_offset;
    const uint8_t* base = pool + static_cast<uint64_t>(page) * geo.page_bytes;
    const auto* k =
        reinterpret_cast<const __half*>(base + static_cast<uint64_t>(2 * layer) * geo.slab_bytes) +
        slot;
    const auto* v = reinterpret_cast<const __half*>(base + static_cast<uint64_t>(2 * layer + 1) *
                                                               geo.slab_bytes) +
                    slot;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) s += qv[i] * __half2float(k[d]);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
    const float m_new = fmaxf(m, s);
    const float correction = expf(m - m_new);  // 0 for the first key (m = -inf)
    const float p = expf(s - m_new);
    l = l * correction + p;
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) acc[i] = acc[i] * correction + p * __half2float(v[d]);
    }
    m = m_new;
  }

  if (lane == 0) {
    warp_max[warp] = m;
    warp_sum[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) warp_acc[warp][d] = acc[i];
  }
  __syncthreads();

  // Merge: every thread reads the warps' maxima and sums, then writes some dimensions.
  float total_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) total_max = fmaxf(total_max, warp_max[w]);
  float weights[kWarps];
  float total_sum = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    // A warp that saw no key has m = -inf and contributes nothing.
    weights[w] = warp_max[w] == -INFINITY ? 0.0f : expf(warp_max[w] - total_max);
    total_sum += warp_sum[w] * weights[w];
  }
  const float inv = 1.0f / total_sum;
  float* dst = out + row * q_dim + static_cast<int64_t>(head) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (weights[w] != 0.0f) o += warp_acc[w][d] * weights[w];
    dst[d] = o * inv;
  }
}

}  // namespace

Status paged_attention(const float* q, const uint8_t* pool, const KvGeometry& geo, int layer,
                       const AttentionShape& shape, int64_t rows, const StepRows& step, float* out,
                       StreamHandle stream) {
  if (shape.head_dim <= 0 || shape.head_dim > kMaxAttentionHeadDim)
    return make_error(Errc::unsupported, "paged_attention: head_dim ", shape.head_dim,
                      " is outside 1..", kMaxAttentionHeadDim);
  if (shape.n_kv_heads <= 0 || shape.n_heads % shape.n_kv_heads != 0)
    return make_error(Errc::invalid_argument, "paged_attention: ", shape.n_heads,
                      " heads are not a multiple of ", shape.n_kv_heads, " kv heads");
  if (rows <= 0) return ok_status();
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(shape.n_heads));
  attention_kernel<<<grid, kWarps * 32, 0, stream>>>(q, pool, geo, layer, shape, step, out);
  return detail::launch_status("attention_kernel");
}

}  // namespace icam::gpu
