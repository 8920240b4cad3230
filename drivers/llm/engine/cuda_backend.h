// The CUDA implementation of Backend: the CPU backend's step (cpu_backend.cpp) with every
// operation on the device, through the kernels of gpu/ (L0). Weights are uploaded once, at
// creation, in their GGUF block formats and dequantized inside the matrix kernels; activations
// stay in float (the CPU quantizes them per block, so logits differ from the CPU's by that
// rounding, which the tests bound). Keys and values live in a device mirror of the KvPool:
// the same page ids, the same byte layout, in device memory. The host KvPool stays the page
// allocator and reference counter; its own bytes are not written by forward() (the mmap
// reservation stays untouched and costs no memory), so code copying pages between memory tiers
// must pull/push them first (pull_kv_page_to_host, push_kv_page_to_device below).
//
// Only built with ICAM_HAVE_CUDA; otherwise create_cuda_backend reports "built without CUDA".
// Thread-safety: forward() is called from one thread at a time (the engine thread); the device
// is made current on that thread at each call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "drivers/llm/engine/backend.h"
#include "drivers/llm/engine/weights.h"

namespace icam::llm {

struct CudaBackendOptions {
  KvPoolOptions kv;        // the pool's size is device memory here
  int device = 0;          // CUDA device index
  bool tf32 = true;        // large products on tensor cores in TF32 (false: full float in cuBLAS)
  bool use_cublas = true;  // false: every product runs icam's own kernels
};

// What the backend holds on the device, for logs and benchmarks.
struct CudaBackendInfo {
  std::string device_name;
  uint64_t weight_bytes = 0;       // uploaded weights (a tied embedding counted once)
  uint64_t kv_bytes = 0;           // the device KV pool
  uint64_t scratch_bytes = 0;      // activations and the matmul tile, at creation
  uint64_t device_free_bytes = 0;  // free after creation
  std::string matmul;              // where cuBLAS was loaded from, or why not
};

// `config` and `weights` must outlive the backend. Errors: Errc::unavailable without CUDA or
// a device; Errc::resource_exhausted when the device lacks memory (the message names the bytes
// needed and free); Errc::unsupported for a shape the kernels do not handle (head_dim > 256).
Result<std::unique_ptr<Backend>> create_cuda_backend(const ModelConfig& config,
                                                     const ModelWeights& weights,
                                                     const CudaBackendOptions& options);

// The info of a backend made by create_cuda_backend; null for any other backend.
const CudaBackendInfo* cuda_backend_info(const Backend& backend);

// Keys and values of a CUDA backend live in device memory; its KvPool's own bytes are not kept
// up to date. Code that reads or writes whole pages through the pool (KvPool::page_data,
// read_page, write_page: the memory tiers) brackets those calls with these: pull before reading
// a page from the pool, push after writing one into it. Both are no-ops (ok) for any other
// backend, whose pool is the truth. Errc::invalid_argument for a page not in use.
Status pull_kv_page_to_host(Backend& backend, int32_t page);
Status push_kv_page_to_device(Backend& backend, int32_t page);

}  // namespace icam::llm
