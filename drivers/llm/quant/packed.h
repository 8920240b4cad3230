// Weight matrices repacked once, at load, into the layout the fastest kernels of this CPU read, and
// the matrix products on them.
//
// Why: in GGUF order each row is a run of blocks, so a kernel finishes one row's float sum per
// call and pays, per block and activation row, for a scale broadcast, an int-to-float conversion
// and a float multiply-add. Interleaving 8 rows per block (layout in packed_layout.h) puts the 8
// rows' partial sums in the 8 lanes of one vector: the 8 block scales load as one vector, the
// float work is shared by 8 rows, and the integer work needs no horizontal sums. Q8_0, Q5_0,
// Q4_K and Q6_K (all of the default model's matrices) have packed kernels (Q6_K only on CPUs
// with the 512-bit ones; ICAM_NO_PACKED_K=1 leaves both K-quants unpacked); other formats (and
// every format on CPUs without AVX2, or with ICAM_FORCE_SCALAR) keep the GGUF rows and the
// kernels of quant.h.
//
// Numerics: a packed kernel computes, for each row, exactly what the scalar reference kernel
// computes (the same integer block sums, the same float products and the same sequential order
// of block additions), so results are bit-identical to matmul_reference, whatever the batch,
// the thread count or the other products of the call.
//
// Thread-safety: a PackedWeight is immutable after pack(); products may read it from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/thread_pool.h"
#include "drivers/llm/gguf/ggml_type.h"

namespace icam::llm {

class PackedWeight {
 public:
  PackedWeight() = default;

  // A rows x cols matrix of `type` in GGUF row order at `data` (which must outlive the result;
  // rows past the last whole group of 8 are read from there). Packs when the active kernels have
  // a packed layout for the type, otherwise refers to `data` as it is. Contract violations
  // (no kernels for the type, cols not whole blocks) abort as matmul's do.
  static PackedWeight pack(GgmlType type, const void* data, int64_t rows, int64_t cols);

  // A matrix to pack, as pack() takes it.
  struct Source {
    GgmlType type;
    const void* data;
    int64_t rows;
    int64_t cols;
  };
  // Packs several matrices into one allocation, one after the other in the order given (the
  // order a forward pass reads them in), and returns them in that order; they share the
  // allocation, which lives as long as any of them. Why: the kernel backs memory with 2 MiB huge
  // pages only in whole, aligned 2 MiB ranges, and most of a small model's matrices are smaller
  // than that (Gemma 3 270M: 0.2 to 1.8 MiB each). Alone, each streams through 4 KiB pages, up
  // to a third slower (docs/performance.md, "Huge pages for every matrix").
  // `packed`, when given, is called with each matrix that has a packed copy as soon as the copy
  // is written (the engine drops the GGUF pages it replaces there, so that the originals and
  // the copies are not all resident at once).
  static std::vector<PackedWeight> pack_together(
      std::span<const Source> sources,
      const std::function<void(const PackedWeight&)>& packed = nullptr);

  GgmlType type() const { return type_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // The GGUF rows.
  const void* original() const { return original_; }
  // Leading rows held in the packed layout: a multiple of 8, 0 when not packed.
  int64_t packed_rows() const { return packed_rows_; }
  // Group g (8 rows) of the packed layout; group_bytes() apart.
  const uint8_t* group(int64_t g) const { return packed_ + g * group_bytes_; }
  size_t group_bytes() const { return group_bytes_; }
  // Bytes held in the packed copy.
  size_t packed_bytes() const { return static_cast<size_t>(packed_rows_ / 8) * group_bytes_; }

 private:
  GgmlType type_ = GgmlType::F32;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  const void* original_ = nullptr;
  int64_t packed_rows_ = 0;
  size_t group_bytes_ = 0;
  // The allocation this matrix's packed copy lies in (shared with the matrices packed together
  // with it), and where in it the copy starts.
  std::shared_ptr<uint8_t> storage_;
  const uint8_t* packed_ = nullptr;
};

// One product of a matmul_group call: y[b * ldy + r] = sum_k W[r][k] * x[b * cols + k].
struct MatmulJob {
  const PackedWeight* w;
  float* y;
  int64_t ldy;
};

// Called with a range of rows [begin, end) once those rows of every job are final for every
// activation row; see matmul_group.
using RowsDone = std::function<void(int64_t begin, int64_t end)>;

// The products of several weights with the same activations x (batch rows of cols floats), in
// one parallel region: the activations are converted once and the pool's threads are handed work
// once, instead of once per product. Jobs must have the same cols; jobs whose weight types take
// different activation formats are run one after another.
//
// With `done`, all jobs must also have the same rows; the row range of a parallel task is then
// the same in every job, and done(begin, end) runs on the task's thread right after the task,
// so that an element-wise step on those rows (an activation function) runs in the same region.
void matmul_group(ThreadPool& pool, std::span<const MatmulJob> jobs, const float* x, int64_t batch,
                  const RowsDone* done = nullptr);

// A single product: matmul_group with one job.
void matmul(ThreadPool& pool, const PackedWeight& w, const float* x, int64_t batch, float* y,
            int64_t ldy);

}  // namespace icam::llm
