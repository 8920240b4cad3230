// The matrix product and the public entry points that dispatch to a kernel table.
//
// A call runs in two phases: the activation rows are converted to the weight type's activation
// layout (ggml's vec-dot type), once per call, into per-thread scratch that only grows; then the
// output rows are split across the pool. Each task reads its weight rows from memory once and
// takes their dot products with up to kMaxDotCols activation rows per kernel call, so weight
// traffic does not grow with the batch: batched calls cost little more than single ones while
// the product is bound by memory bandwidth, as decoding is.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "drivers/llm/quant/kernel_table.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm {
namespace {

// Converted activations of the current call. Per calling thread, so that matmul may be called
// from several threads (each with its own pool); it grows to the largest call and stays.
uint8_t* activation_scratch(size_t bytes) {
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < bytes) scratch.resize(bytes);
  return scratch.data();
}

// Rows per parallel task: about 64 KiB of weights so that scheduling costs vanish, but at least
// four tasks per thread so that threads finishing early find work.
size_t row_grain(size_t row_bytes, int64_t rows, int threads) {
  const size_t by_bytes = std::max<size_t>(1, (64u << 10) / row_bytes);
  const size_t by_balance = std::max<size_t>(1, static_cast<size_t>(rows) / (4u * threads));
  return std::min(by_bytes, by_balance);
}

}  // namespace

void matmul_with_kernels(const KernelTable& table, ThreadPool* pool, GgmlType wtype, const void* w,
                         int64_t rows, int64_t cols, const float* x, int64_t batch, float* y,
                         int64_t ldy) {
  const FormatKernels& k = checked_kernels(table, "matmul", wtype, cols, KernelUse::dot);
  if (rows < 0 || batch < 0 || ldy < rows) {
    std::fprintf(stderr, "icam: matmul: bad shape rows=%lld batch=%lld ldy=%lld\n",
                 static_cast<long long>(rows), static_cast<long long>(batch),
                 static_cast<long long>(ldy));
    std::abort();
  }
  if (rows == 0 || batch == 0) return;

  // Phase 1: activations in the weight type's activation layout (F32 ones are used as they are).
  const auto* act = reinterpret_cast<const uint8_t*>(x);
  const size_t act_row_bytes = activation_row_bytes(k.activations, cols);
  if (k.activations != ActivationFormat::f32) {
    const QuantizeFn quantize = table[k.activations].quantize;
    uint8_t* converted = activation_scratch(static_cast<size_t>(batch) * act_row_bytes);
    const auto convert = [&](size_t begin, size_t end) {
      for (size_t b = begin; b < end; ++b) {
        quantize(x + b * static_cast<size_t>(cols), converted + b * act_row_bytes, cols);
      }
    };
    // Converting is cheap next to the product (cols * batch elements against rows * cols * batch
    // multiply-adds); below this size waking the pool would cost more than it saves.
    constexpr int64_t kParallelConvertElements = 1 << 16;
    if (pool != nullptr && batch > 1 && batch * cols >= kParallelConvertElements) {
      pool->parallel_for(static_cast<size_t>(batch), 1, convert);
    } else {
      convert(0, static_cast<size_t>(batch));
    }
    act = converted;
  }

  // Phase 2: output rows. A task's weight rows (about 64 KiB, see row_grain) are read from
  // memory once; for a long batch they are then reused from L2 for every tile of kBatchTile
  // activation rows, which keeps the activations being read small enough for L2 as well.
  constexpr int64_t kBatchTile = 32;
  const size_t w_row_bytes = ggml_row_bytes(wtype, static_cast<uint64_t>(cols));
  const auto* weights = static_cast<const uint8_t*>(w);
  const auto compute = [&](size_t begin, size_t end) {
    float out[kMaxDotCols];
    for (int64_t tile = 0; tile < batch; tile += kBatchTile) {
      const int64_t tile_end = std::min(batch, tile + kBatchTile);
      for (size_t r = begin; r < end; ++r) {
        const uint8_t* w_row = weights + r * w_row_bytes;
        for (int64_t b = tile; b < tile_end; b += kMaxDotCols) {
          const int nx = static_cast<int>(std::min<int64_t>(kMaxDotCols, tile_end - b));
          k.dot(cols, w_row, act + static_cast<size_t>(b) * act_row_bytes, act_row_bytes, nx, out);
          for (int c = 0; c < nx; ++c) y[(b + c) * ldy + static_cast<int64_t>(r)] = out[c];
        }
      }
    }
  };
  if (pool != nullptr) {
    pool->parallel_for(static_cast<size_t>(rows), row_grain(w_row_bytes, rows, pool->size()),
                       compute);
  } else {
    compute(0, static_cast<size_t>(rows));
  }
}

void matmul(ThreadPool& pool, GgmlType wtype, const void* w, int64_t rows, int64_t cols,
            const float* x, int64_t batch, float* y, int64_t ldy) {
  matmul_with_kernels(active_kernels(), &pool, wtype, w, rows, cols, x, batch, y, ldy);
}

void matmul_reference(GgmlType wtype, const void* w, int64_t rows, int64_t cols, const float* x,
                      int64_t batch, float* y, int64_t ldy) {
  matmul_with_kernels(scalar_kernels(), nullptr, wtype, w, rows, cols, x, batch, y, ldy);
}

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
  checked_kernels(active_kernels(), "dequantize_row", t, n, KernelUse::dequantize)
      .dequantize(src, dst, n);
}

float dot_reference_f32(GgmlType wtype, const void* w_row, const float* x, int64_t n) {
  const FormatKernels& k =
      checked_kernels(scalar_kernels(), "dot_reference_f32", wtype, n, KernelUse::dequantize);
  // 256 elements at a time: a whole number of blocks of every format.
  constexpr int64_t kChunk = 256;
  const uint64_t chunk_bytes = ggml_row_bytes(wtype, kChunk);
  const auto* bytes = static_cast<const uint8_t*>(w_row);
  float values[kChunk];
  double sum = 0.0;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t count = std::min(kChunk, n - start);
    k.dequantize(bytes + (start / kChunk) * chunk_bytes, values, count);
    for (int64_t i = 0; i < count; ++i) sum += static_cast<double>(values[i]) * x[start + i];
  }
  return static_cast<float>(sum);
}

}  // namespace icam::llm
