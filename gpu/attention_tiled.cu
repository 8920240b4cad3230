#include <cuda_fp16.h>

#include <cmath>

#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = kAttentionTileRows / kWarps;
constexpr int kKeyBlock = 32;
constexpr int kDimsPerLane = kMaxAttentionHeadDim / 32;

// Block (tile, head). Per block of kKeyBlock positions, all threads copy the keys and values of
// the tile's kv head into shared memory (consecutive threads, consecutive halves: coalesced);
// then warp w serves tile rows w * kRowsPerWarp ..: lanes hold dimensions lane, lane + 32, ...
// of the row's query and output, form each score with a shuffle reduction, and keep the row's
// online softmax (running max m, running sum l, output rescaled when m grows). One warp owns a
// row, so no merge across warps is needed.
__global__ void __launch_bounds__(kWarps * 32)
    attention_tiled_kernel(const float* q, const uint8_t* pool, KvGeometry geo, int layer,
                           AttentionShape shape, const int32_t* tiles, StepRows step, float* out) {
  __shared__ __half k_s[kKeyBlock][kMaxAttentionHeadDim];
  __shared__ __half v_s[kKeyBlock][kMaxAttentionHeadDim];

  const int64_t row0 = tiles[2 * blockIdx.x];
  const int count = tiles[2 * blockIdx.x + 1];
  const int head = blockIdx.y;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int hd = shape.head_dim;
  const int q_dim = shape.n_heads * hd;
  const int kv_head = head / (shape.n_heads / shape.n_kv_heads);
  const int32_t pos0 = step.pos[row0];
  const int32_t last = pos0 + count - 1;
  const int32_t begin = shape.sliding_window > 0 ? max(0, pos0 - shape.sliding_window + 1) : 0;
  const int32_t* table = step.pages + step.table_offset[row0];
  const uint64_t head_offset = static_cast<uint64_t>(kv_head) * hd;

  float qv[kRowsPerWarp][kDimsPerLane];
  float acc[kRowsPerWarp][kDimsPerLane];
  float m[kRowsPerWarp];
  float l[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp * kRowsPerWarp + i;
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int u = 0; u < kDimsPerLane; ++u) {
      const int d = lane + 32 * u;
      qv[i][u] =
          r < count && d < hd ? q[(row0 + r) * q_dim + static_cast<int64_t>(head) * hd + d] : 0.0f;
      acc[i][u] = 0.0f;
    }
  }

  for (int32_t j0 = begin; j0 <= last; j0 += kKeyBlock) {
    const int nk = min(kKeyBlock, last - j0 + 1);
    for (int idx = threadIdx.x; idx < nk * hd; idx += blockDim.x) {
      const int kk = idx / hd;
      const int d = idx % hd;
      const int32_t j = j0 + kk;
      const int32_t page = table[j / geo.page_tokens];
      const uint64_t slot =
          static_cast<uint64_t>(j % geo.page_tokens) * geo.kv_dim + head_offset + d;
      const uint8_t* base = pool + static_cast<uint64_t>(page) * geo.page_bytes;
      k_s[kk][d] = reinterpret_cast<const __half*>(base + static_cast<uint64_t>(2 * layer) *
                                                              geo.slab_bytes)[slot];
      v_s[kk][d] = reinterpret_cast<const __half*>(base + static_cast<uint64_t>(2 * layer + 1) *
                                                              geo.slab_bytes)[slot];
    }
    __syncthreads();

#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp * kRowsPerWarp + i;
      if (r >= count) continue;  // uniform across the warp
      const int32_t pos = pos0 + r;
      const int32_t first = shape.sliding_window > 0 ? max(0, pos - shape.sliding_window + 1) : 0;
      for (int kk = 0; kk < nk; ++kk) {
        const int32_t j = j0 + kk;
        if (j < first || j > pos) continue;  // uniform across the warp
        float s = 0.0f;
#pragma unroll
        for (int u = 0; u < kDimsPerLane; ++u) {
          const int d = lane + 32 * u;
          if (d < hd) s += qv[i][u] * __half2float(k_s[kk][d]);
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1)
          s += __shfl_xor_sync(0xffffffffu, s, offset);
        const float m_new = fmaxf(m[i], s);
        const float correction = expf(m[i] - m_new);  // 0 for the first key (m = -inf)
        const float p = expf(s - m_new);
        l[i] = l[i] * correction + p;
#pragma unroll
        for (int u = 0; u < kDimsPerLane; ++u) {
          const int d = lane + 32 * u;
          if (d < hd) acc[i][u] = acc[i][u] * correction + p * __half2float(v_s[kk][d]);
        }
        m[i] = m_new;
      }
    }
    __syncthreads();  // before the next block overwrites the shared keys and values
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp * kRowsPerWarp + i;
    if (r >= count) continue;
    // Every row sees at least its own position, so l > 0.
    const float inv = 1.0f / l[i];
    float* dst = out + (row0 + r) * q_dim + static_cast<int64_t>(head) * hd;
#pragma unroll
    for (int u = 0; u < kDimsPerLane; ++u) {
      const int d = lane + 32 * u;
      if (d < hd) dst[d] = acc[i][u] * inv;
    }
  }
}

}  // namespace

Status paged_attention_tiled(const float* q, const uint8_t* pool, const KvGeometry& geo, int layer,
                             const AttentionShape& shape, const int32_t* tiles, int64_t n_tiles,
                             const StepRows& step, float* out, StreamHandle stream) {
  if (shape.head_dim <= 0 || shape.head_dim > kMaxAttentionHeadDim)
    return make_error(Errc::unsupported, "paged_attention_tiled: head_dim ", shape.head_dim,
                      " is outside 1..", kMaxAttentionHeadDim);
  if (shape.n_kv_heads <= 0 || shape.n_heads % shape.n_kv_heads != 0)
    return make_error(Errc::invalid_argument, "paged_attention_tiled: ", shape.n_heads,
                      " heads are not a multiple of ", shape.n_kv_heads, " kv heads");
  if (n_tiles <= 0) return ok_status();
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(shape.n_heads));
  attention_tiled_kernel<<<grid, kWarps * 32, 0, stream>>>(q, pool, geo, layer, shape, tiles, step,
                                                           out);
  return detail::launch_status("attention_tiled_kernel");
}

}  // namespace icam::gpu
