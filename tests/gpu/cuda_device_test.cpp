// GPU tests run where a CUDA device is present and skip cleanly elsewhere.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "drivers/llm/engine/ops.h"
#include "gpu/cuda_device.h"

namespace icam::gpu {
namespace {

bool have_device() { return list_devices().ok(); }

TEST(CudaDevice, ReportsNoDeviceClearly) {
  auto devices = list_devices();
  if (devices.ok()) {
    EXPECT_FALSE(devices->empty());
    for (const auto& d : *devices) EXPECT_GT(d.total_memory, 0u);
  } else {
    EXPECT_EQ(devices.error().code(), Errc::unavailable);
    const std::string& m = devices.error().message();
    EXPECT_TRUE(m.find("no CUDA device") != std::string::npos ||
                m.find("built without CUDA") != std::string::npos)
        << m;
  }
}

TEST(CudaDevice, RmsNormMatchesCpuReference) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device: " << list_devices().error().message();
  const int rows = 7, n = 640;
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0, 2);
  std::vector<float> x(rows * n), w(n), gpu(rows * n), cpu(rows * n);
  for (auto& v : x) v = dist(rng);
  for (auto& v : w) v = 1 + dist(rng) / 4;
  ASSERT_TRUE(rms_norm_host(x.data(), w.data(), gpu.data(), rows, n, 1e-6f).ok());
  for (int r = 0; r < rows; ++r)
    llm::ops::rms_norm(x.data() + r * n, w.data(), cpu.data() + r * n, n, 1e-6f);
  for (int i = 0; i < rows * n; ++i) ASSERT_NEAR(gpu[i], cpu[i], 1e-4f * (1 + std::fabs(cpu[i])));
}

TEST(CudaDevice, CopyBandwidthIsPositive) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  auto bw = measure_copy_bandwidth(0, 256ull << 20, 5);
  ASSERT_TRUE(bw.ok()) << bw.error().message();
  EXPECT_GT(*bw, 1e9);
}

}  // namespace
}  // namespace icam::gpu
