// The CUDA backend's entry points in a build without nvcc: everything reports that CUDA was not
// compiled in, so callers fall back to the CPU backend.
#include "gpu/cuda_device.h"

namespace icam::gpu {
namespace {
Error not_built() {
  return make_error(Errc::unavailable, "built without CUDA (configure with ICAM_CUDA=ON and nvcc)");
}
}  // namespace

bool compiled_with_cuda() {
  return false;
}
Result<std::vector<DeviceInfo>> list_devices() {
  return not_built();
}
Result<double> measure_copy_bandwidth(int, uint64_t, int) {
  return not_built();
}
Status rms_norm_host(const float*, const float*, float*, int, int, float) {
  return not_built();
}

}  // namespace icam::gpu
