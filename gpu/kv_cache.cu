#include <cuda_fp16.h>

#include "gpu/cuda_check.h"
#include "gpu/ops.h"

namespace icam::gpu {
namespace {

// One thread per (row, element): both the key and the value element.
__global__ void store_kv_kernel(uint8_t* pool, KvGeometry geo, int layer, const float* k,
                                const float* v, int64_t total, StepRows step) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= total) return;
  const int64_t row = t / geo.kv_dim;
  const int i = static_cast<int>(t % geo.kv_dim);
  const int32_t pos = step.pos[row];
  const int32_t page = step.pages[step.table_offset[row] + pos / geo.page_tokens];
  const uint64_t slot = static_cast<uint64_t>(pos % geo.page_tokens) * geo.kv_dim + i;
  uint8_t* base = pool + static_cast<uint64_t>(page) * geo.page_bytes;
  auto* keys = reinterpret_cast<__half*>(base + static_cast<uint64_t>(2 * layer) * geo.slab_bytes);
  auto* values =
      reinterpret_cast<__half*>(base + static_cast<uint64_t>(2 * layer + 1) * geo.slab_bytes);
  keys[slot] = __float2half_rn(k[t]);
  values[slot] = __float2half_rn(v[t]);
}

}  // namespace

Status store_kv(uint8_t* pool, const KvGeometry& geo, int layer, const float* k, const float* v,
                int64_t rows, const StepRows& step, StreamHandle stream) {
  const int64_t total = rows * geo.kv_dim;
  if (total <= 0) return ok_status();
  const int threads = 256;
  store_kv_kernel<<<detail::blocks_for(total, threads), threads, 0, stream>>>(pool, geo, layer, k,
                                                                              v, total, step);
  return detail::launch_status("store_kv_kernel");
}

}  // namespace icam::gpu
