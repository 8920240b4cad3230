// L0: the matrix product the engine calls for every projection, choosing the kernel by batch:
// up to kMatvecBatch * 2 activation rows run the warp-per-row matvec (memory-bound decode);
// larger batches (prefill, many sequences) dequantize the weight one tile of rows at a time into
// float scratch and multiply on tensor cores with cuBLAS (TF32 inputs, float accumulation), when
// cuBLAS can be loaded; otherwise they run matvec in groups. TF32 rather than half: activations of
// gemma's residual stream and FFN exceed the half range, and TF32 keeps float's exponent.
//
// Thread-safety: one Matmul per stream; not shared between threads.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "gpu/device_memory.h"
#include "gpu/weight_format.h"

namespace icam::gpu {

struct MatmulOptions {
  // Device scratch for one dequantized weight tile.
  uint64_t tile_bytes = 64ull << 20;
  // Batches above this use the tensor-core path (when cuBLAS loaded).
  int64_t gemm_min_batch = 16;
  // false: cuBLAS computes in full float (CUBLAS_COMPUTE_32F) instead of TF32.
  bool tf32 = true;
  // false: never load cuBLAS (tests of the fallback).
  bool use_cublas = true;
};

class Matmul {
 public:
  static Result<Matmul> create(StreamHandle stream, const MatmulOptions& options = {});
  Matmul() = default;
  Matmul(Matmul&& other) noexcept;
  Matmul& operator=(Matmul&& other) noexcept;
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;
  ~Matmul();

  // y[b * ldy + r] = sum_k W[r][k] * x[b * w.cols + k] (as matvec).
  Status run(const DeviceWeight& w, const float* x, int64_t batch, float* y, int64_t ldy);

  // True when large batches use cuBLAS; `cublas_note` says where it was loaded from or why not.
  bool tensor_cores() const { return handle_ != nullptr; }
  const std::string& cublas_note() const { return note_; }
  uint64_t scratch_bytes() const { return tile_.bytes(); }

 private:
  Status gemm(const DeviceWeight& w, const float* x, int64_t batch, float* y, int64_t ldy);

  StreamHandle stream_ = nullptr;
  MatmulOptions options_;
  void* handle_ = nullptr;  // cublasHandle_t
  DeviceBuffer tile_;
  std::string note_;
};

}  // namespace icam::gpu
