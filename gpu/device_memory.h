// L0: device memory, streams and copies, behind plain C++ types so that host code (the CUDA
// backend in drivers/llm/engine, the tests) never includes CUDA headers. Every failure of the
// CUDA runtime becomes an Error naming the call and CUDA's reason.
//
// Only built with ICAM_HAVE_CUDA. Thread-safety: a Stream and the buffers used on it belong to one
// thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

// The CUDA runtime's stream type is `struct CUstream_st*`; naming it here keeps cuda_runtime.h out
// of host translation units.
struct CUstream_st;

namespace icam::gpu {

using StreamHandle = CUstream_st*;

// Makes `device` current for the calling thread.
Status set_device(int device);

struct MemoryInfo {
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};
Result<MemoryInfo> memory_info();

// An owned device allocation. Move-only; frees on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Allocates `bytes` (at least 1). On failure the error names `what`, the bytes asked for and
  // the bytes free on the device, and is Errc::resource_exhausted for out-of-memory.
  static Result<DeviceBuffer> allocate(uint64_t bytes, std::string_view what);
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void* data() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  uint64_t bytes() const { return bytes_; }
  explicit operator bool() const { return ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  uint64_t bytes_ = 0;
};

// An owned, non-blocking CUDA stream.
class Stream {
 public:
  static Result<Stream> create();
  Stream() = default;
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  StreamHandle handle() const { return handle_; }
  // Waits for all work queued on the stream; reports the first asynchronous error (a fault in a
  // kernel shows up here).
  Status synchronize() const;

 private:
  StreamHandle handle_ = nullptr;
};

// Asynchronous copies on `stream` (pageable host memory makes them synchronous with respect to
// the host buffer, which is what callers rely on: the host buffer may be reused on return for
// host-to-device copies; for device-to-host, synchronize the stream before reading).
Status copy_to_device(void* dst, const void* src, uint64_t bytes, StreamHandle stream);
Status copy_to_host(void* dst, const void* src, uint64_t bytes, StreamHandle stream);
Status copy_on_device(void* dst, const void* src, uint64_t bytes, StreamHandle stream);
Status fill_zero(void* dst, uint64_t bytes, StreamHandle stream);

// Host-side convenience for tests: allocate and upload `bytes` in one call.
Result<DeviceBuffer> upload(const void* src, uint64_t bytes, std::string_view what,
                            StreamHandle stream);

}  // namespace icam::gpu
