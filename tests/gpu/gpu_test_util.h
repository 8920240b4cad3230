// Helpers for the kernel tests: device presence, and moving std::vectors to and from the device.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gpu/cuda_device.h"
#include "gpu/device_memory.h"

namespace icam::gpu::testing {

// Empty when a device is present, else why not (the skip message).
inline std::string no_device_reason() {
  auto devices = list_devices();
  return devices.ok() ? std::string() : devices.error().message();
}

#define ICAM_REQUIRE_DEVICE()                                         \
  do {                                                                \
    const std::string why = ::icam::gpu::testing::no_device_reason(); \
    if (!why.empty()) GTEST_SKIP() << "no CUDA device: " << why;      \
  } while (0)

template <typename T>
DeviceBuffer to_device(const std::vector<T>& host, const Stream& stream) {
  auto b = upload(host.data(), host.size() * sizeof(T), "test data", stream.handle());
  EXPECT_TRUE(b.ok()) << b.error().message();
  return b.ok() ? std::move(b).value() : DeviceBuffer();
}

template <typename T>
std::vector<T> to_host(const DeviceBuffer& device, size_t count, const Stream& stream) {
  std::vector<T> host(count);
  Status s = copy_to_host(host.data(), device.data(), count * sizeof(T), stream.handle());
  EXPECT_TRUE(s.ok()) << s.error().message();
  s = stream.synchronize();
  EXPECT_TRUE(s.ok()) << s.error().message();
  return host;
}

inline DeviceBuffer device_zeros(size_t bytes, const Stream& stream) {
  auto b = DeviceBuffer::allocate(bytes, "test output");
  EXPECT_TRUE(b.ok()) << b.error().message();
  if (!b.ok()) return DeviceBuffer();
  EXPECT_TRUE(fill_zero(b->data(), bytes, stream.handle()).ok());
  return std::move(b).value();
}

inline Stream make_stream() {
  auto s = Stream::create();
  EXPECT_TRUE(s.ok()) << s.error().message();
  return s.ok() ? std::move(s).value() : Stream();
}

}  // namespace icam::gpu::testing
