// Choosing and creating a Backend by name, for the daemon, icamctl and the benchmarks:
// "cpu", "cuda" or "auto" (CUDA when this build has it and a device is visible, else the CPU).
#pragma once

#include <memory>
#include <string_view>

#include "common/result.h"
#include "drivers/llm/engine/backend.h"
#include "drivers/llm/engine/model.h"

namespace icam::llm {

struct BackendOptions {
  KvPoolOptions kv;     // host memory for the CPU, device memory for CUDA
  int threads = 0;      // CPU worker threads (0: one per core)
  int cuda_device = 0;  // CUDA device index
};

// Errors: Errc::invalid_argument for an unknown kind; for "cuda", whatever the CUDA backend
// reports (Errc::unavailable "built without CUDA" or "no CUDA device", Errc::resource_exhausted
// when the model does not fit). "auto" falls back to the CPU, with a warning in the log, when the
// CUDA backend cannot be created. The model must outlive the backend.
Result<std::unique_ptr<Backend>> make_backend(std::string_view kind, const Model& model,
                                              const BackendOptions& options);

}  // namespace icam::llm
