// Internal to gpu/*.cu: turning CUDA runtime errors into icam Errors. Not for host code (it
// includes cuda_runtime.h).
#pragma once

#include <cuda_runtime.h>

#include "common/result.h"

namespace icam::gpu::detail {

inline Error cuda_error(cudaError_t err, const char* what) {
  return make_error(Errc::unavailable, "CUDA: ", what, ": ", cudaGetErrorName(err), " (",
                    cudaGetErrorString(err), ")");
}

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err != cudaSuccess) return cuda_error(err, what);
  return ok_status();
}

// After a kernel launch: a bad configuration is reported by cudaGetLastError at once; faults in
// the kernel itself surface at the next synchronization (Stream::synchronize).
inline Status launch_status(const char* kernel) {
  return cuda_status(cudaGetLastError(), kernel);
}

inline unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace icam::gpu::detail
