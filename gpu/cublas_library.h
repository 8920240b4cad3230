// Internal to gpu/*.cu: cuBLAS, loaded with dlopen the first time it is asked for. Linking it
// would make every icam binary need libcublas at start-up, and icam's binaries must start (and
// fall back to the CPU) on machines without the CUDA libraries; the CUDA runtime itself is linked
// statically for the same reason. When the library cannot be loaded, callers use icam's own
// kernels instead (gpu/matvec.h), which are correct but do not use tensor cores.
#pragma once

#include <cublas_v2.h>

#include <string>

namespace icam::gpu::detail {

// cublasGemmEx's C signature (the C++ header adds an overload, so decltype cannot name it).
using CublasGemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                          int, int, const void*, const void*, cudaDataType, int,
                                          const void*, cudaDataType, int, const void*, void*,
                                          cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

struct CublasLibrary {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  CublasGemmExFn gemm_ex = nullptr;
  std::string loaded_from;  // the path or soname dlopen accepted
  std::string error;        // why it could not be loaded, when it could not
  bool ok() const { return gemm_ex != nullptr; }
};

// The process-wide library, loaded once (thread-safe); never unloaded.
const CublasLibrary& cublas_library();

}  // namespace icam::gpu::detail
