#include <cstdio>

#include "gpu/cuda_device.h"
#include "kernel/ctl/commands.h"

namespace icam::ctl {

int cmd_devices(const Config&, const std::vector<std::string>& argv) {
  if (!argv.empty()) return fail(kExitUsage, "usage: icamctl devices");
  auto devices = gpu::list_devices();
  if (!devices.ok()) {
    std::printf("no CUDA devices: %s\n", devices.error().message().c_str());
    return kExitOk;
  }
  for (const auto& d : *devices)
    std::printf("cuda:%d  %s  sm_%d%d  %d SMs  %.1f GiB\n", d.index, d.name.c_str(),
                d.compute_major, d.compute_minor, d.multiprocessors,
                static_cast<double>(d.total_memory) / (1ull << 30));
  return kExitOk;
}

}  // namespace icam::ctl
