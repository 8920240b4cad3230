// L0: what the CUDA backend can see of the machine. Every function works on machines without a
// GPU or without the CUDA backend compiled in, and then reports Errc::unavailable with a message
// saying which ("no CUDA device" or "built without CUDA"), so callers can fall back to the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace icam::gpu {

struct DeviceInfo {
  int index = 0;
  std::string name;
  uint64_t total_memory = 0;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
};

// True when this build includes the CUDA backend (ICAM_CUDA found nvcc).
bool compiled_with_cuda();

// The visible devices; Errc::unavailable when there are none.
Result<std::vector<DeviceInfo>> list_devices();

// Device memory bandwidth in bytes per second, measured by a copy kernel over `bytes` bytes
// (read + write counted), median of `iterations` runs.
Result<double> measure_copy_bandwidth(int device, uint64_t bytes, int iterations);

// RMSNorm of `rows` rows of `n` floats on the device (inputs and outputs in host memory; for
// parity tests against the CPU reference).
Status rms_norm_host(const float* x, const float* weight, float* out, int rows, int n, float eps);

}  // namespace icam::gpu
