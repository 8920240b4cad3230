// create_cuda_backend in a build without nvcc (ICAM_HAVE_CUDA off).
#include "drivers/llm/engine/cuda_backend.h"

namespace icam::llm {

Result<std::unique_ptr<Backend>> create_cuda_backend(const ModelConfig&, const ModelWeights&,
                                                     const CudaBackendOptions&) {
  return make_error(Errc::unavailable,
                    "the CUDA backend is not in this build: built without CUDA (configure with "
                    "ICAM_CUDA=ON or AUTO where nvcc is installed)");
}

const CudaBackendInfo* cuda_backend_info(const Backend&) {
  return nullptr;
}

// No CUDA backend can exist in this build: every pool is the truth.
Status pull_kv_page_to_host(Backend&, int32_t) {
  return ok_status();
}
Status push_kv_page_to_device(Backend&, int32_t) {
  return ok_status();
}

}  // namespace icam::llm
