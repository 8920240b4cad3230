#include "drivers/llm/engine/backend_factory.h"

#include "common/log.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/cuda_backend.h"
#include "gpu/cuda_device.h"

namespace icam::llm {
namespace {

Result<std::unique_ptr<Backend>> make_cpu(const Model& model, const BackendOptions& options) {
  std::unique_ptr<CpuBackend> cpu =
      ICAM_TRY(CpuBackend::create(model.config(), model.weights(), options.kv, options.threads));
  return std::unique_ptr<Backend>(std::move(cpu));
}

Result<std::unique_ptr<Backend>> make_cuda(const Model& model, const BackendOptions& options) {
  CudaBackendOptions cuda;
  cuda.kv = options.kv;
  cuda.device = options.cuda_device;
  return create_cuda_backend(model.config(), model.weights(), cuda);
}

}  // namespace

Result<std::unique_ptr<Backend>> make_backend(std::string_view kind, const Model& model,
                                              const BackendOptions& options) {
  if (kind == "cpu") return make_cpu(model, options);
  if (kind == "cuda") return make_cuda(model, options);
  if (kind != "auto")
    return make_error(Errc::invalid_argument, "unknown backend '", kind,
                      "' (expected cpu, cuda or auto)");
  if (!gpu::compiled_with_cuda() || !gpu::list_devices().ok()) return make_cpu(model, options);
  auto cuda = make_cuda(model, options);
  if (cuda.ok()) return std::move(cuda).value();
  log::warn("engine", "backend auto: CUDA unavailable (", cuda.error().message(),
            "); using the CPU");
  return make_cpu(model, options);
}

}  // namespace icam::llm
