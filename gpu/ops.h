// L0: the element-wise and attention kernels of a transformer step, with plain C++ launch APIs.
// Each mirrors a CPU reference in drivers/llm/engine/ops.h (tests/gpu compares them). All
// pointers are device memory; every launch is queued on `stream` and returns at once (errors in
// the launch configuration are reported here, faults inside a kernel by Stream::synchronize).
//
// One concept per .cu file: rms_norm.cu, rope.cu, elementwise.cu, activation.cu, kv_cache.cu,
// attention.cu, attention_tiled.cu, argmax.cu.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "gpu/device_memory.h"

namespace icam::gpu {

// --- rms_norm.cu
// out[r][i] = x[r][i] / sqrt(mean(x[r]^2) + eps) * weight[i] for r < rows; the sum of squares is
// accumulated in double, as on the CPU. out may equal x.
Status rms_norm(const float* x, const float* weight, float* out, int64_t rows, int n, float eps,
                StreamHandle stream);
// The same for the rows x[row_index[i]] into out[i], i < rows (the rows that want logits).
Status rms_norm_gather(const float* x, const int32_t* row_index, const float* weight, float* out,
                       int64_t rows, int n, float eps, StreamHandle stream);

// --- rope.cu
// How rotary embeddings pair dimensions (drivers/llm/engine/model_config.h RopeStyle).
enum class RopePairing { interleaved, halves };
// Rotates n_heads heads of head_dim values in each of `rows` rows of x (row stride
// n_heads * head_dim) by that row's angles: cos_sin + r * head_dim holds head_dim / 2 cosines
// then head_dim / 2 sines (the CPU's rope_angles, computed on the host). Each rotated value is
// then multiplied by post_scale (1 for keys; the attention scale for queries, as the CPU does).
Status rope(float* x, int64_t rows, int n_heads, int head_dim, const float* cos_sin,
            RopePairing pairing, float post_scale, StreamHandle stream);

// --- elementwise.cu
// x[i] += y[i] for i < n (the residual add).
Status add_in_place(float* x, const float* y, int64_t n, StreamHandle stream);
// y[r][i] += bias[i] for r < rows, i < dim.
Status add_bias(float* y, const float* bias, int64_t rows, int64_t dim, StreamHandle stream);

// --- activation.cu
enum class GatedActivation { gelu_tanh, silu };
// out[i] = act(gate[i]) * up[i]; out may equal gate.
Status gated_activation(const float* gate, const float* up, float* out, int64_t n,
                        GatedActivation act, StreamHandle stream);

// --- kv_cache.cu and attention.cu
// Where keys and values live in a device KV pool laid out like the engine's KvPool
// (drivers/llm/engine/kv_pool.h): page p starts at p * page_bytes; within it layer l's keys start
// at (2l) * slab_bytes and its values at (2l + 1) * slab_bytes; a slab is page_tokens rows of
// kv_dim IEEE halves.
struct KvGeometry {
  uint64_t page_bytes = 0;
  uint64_t slab_bytes = 0;
  int page_tokens = 0;
  int kv_dim = 0;
};

// Where each token row of a step belongs: its position, and the offset in `pages` (the step's
// block tables, concatenated) of its sequence's table; position p of that sequence lives in page
// pages[table_offset + p / page_tokens], slot p % page_tokens.
struct StepRows {
  const int32_t* pos = nullptr;
  const int32_t* table_offset = nullptr;
  const int32_t* pages = nullptr;
};

// Converts the rows' keys and values (rows x kv_dim floats each) to halves (round to nearest
// even) and writes them into layer `layer` of the pool at each row's position.
Status store_kv(uint8_t* pool, const KvGeometry& geo, int layer, const float* k, const float* v,
                int64_t rows, const StepRows& step, StreamHandle stream);

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;        // at most kMaxAttentionHeadDim
  int sliding_window = 0;  // > 0: a row at position p sees positions > p - sliding_window only
};
inline constexpr int kMaxAttentionHeadDim = 256;

// out[r][h] = softmax_j(q[r][h] . K[j]) V[j] over positions j <= pos[r] (within the window) of
// the row's sequence, keys and values of kv head h / (n_heads / n_kv_heads). q is already
// scaled. One thread block per (row, head); its warps split the keys and keep an online softmax
// in float, merged at the end. Rows of q and out are n_heads * head_dim floats.
Status paged_attention(const float* q, const uint8_t* pool, const KvGeometry& geo, int layer,
                       const AttentionShape& shape, int64_t rows, const StepRows& step, float* out,
                       StreamHandle stream);

// --- attention_tiled.cu
// The prefill variant: one thread block per (tile, head), a tile being up to kAttentionTileRows
// consecutive rows of one sequence at consecutive positions (tiles[2t] = its first row,
// tiles[2t + 1] = its row count; the caller builds tiles within sequences only). The block
// stages blocks of keys and values in shared memory once for all its rows, so long prompts
// read each key and value once per tile instead of once per row. Same result as
// paged_attention up to float rounding.
inline constexpr int kAttentionTileRows = 16;
Status paged_attention_tiled(const float* q, const uint8_t* pool, const KvGeometry& geo, int layer,
                             const AttentionShape& shape, const int32_t* tiles, int64_t n_tiles,
                             const StepRows& step, float* out, StreamHandle stream);

// --- argmax.cu
// out[r] = the index of the largest of x[r * n .. r * n + n) (ties: the lowest index); NaNs are
// never chosen over numbers.
Status argmax_rows(const float* x, int64_t rows, int64_t n, int32_t* out, StreamHandle stream);

}  // namespace icam::gpu
