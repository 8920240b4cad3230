#include <cuda_runtime.h>

#include <utility>

#include "gpu/cuda_check.h"
#include "gpu/device_memory.h"

namespace icam::gpu {

using detail::cuda_status;

Status set_device(int device) {
  return cuda_status(cudaSetDevice(device), "cudaSetDevice");
}

Result<MemoryInfo> memory_info() {
  size_t free_bytes = 0, total_bytes = 0;
  ICAM_TRY(cuda_status(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
  return MemoryInfo{free_bytes, total_bytes};
}

Result<DeviceBuffer> DeviceBuffer::allocate(uint64_t bytes, std::string_view what) {
  if (bytes == 0) bytes = 1;
  DeviceBuffer b;
  const cudaError_t err = cudaMalloc(&b.ptr_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are not blamed for it
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    const Errc code =
        err == cudaErrorMemoryAllocation ? Errc::resource_exhausted : Errc::unavailable;
    return make_error(code, "CUDA: cannot allocate ", what, ": needs ", bytes, " bytes, ",
                      free_bytes, " of ", total_bytes, " bytes free on the device (",
                      cudaGetErrorString(err), ")");
  }
  b.bytes_ = bytes;
  return std::move(b);  // C++17 (nvcc): no implicit move into Result<T>
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
  other.ptr_ = nullptr;
  other.bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = other.ptr_;
    bytes_ = other.bytes_;
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

Result<Stream> Stream::create() {
  Stream s;
  cudaStream_t handle = nullptr;
  ICAM_TRY(
      cuda_status(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking), "cudaStreamCreate"));
  s.handle_ = handle;
  return std::move(s);
}

Stream::Stream(Stream&& other) noexcept : handle_(other.handle_) {
  other.handle_ = nullptr;
}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (handle_) cudaStreamDestroy(handle_);
    handle_ = other.handle_;
    other.handle_ = nullptr;
  }
  return *this;
}

Stream::~Stream() {
  if (handle_) cudaStreamDestroy(handle_);
}

Status Stream::synchronize() const {
  return cuda_status(cudaStreamSynchronize(handle_), "cudaStreamSynchronize");
}

Status copy_to_device(void* dst, const void* src, uint64_t bytes, StreamHandle stream) {
  if (bytes == 0) return ok_status();
  return cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream),
                     "cudaMemcpy host to device");
}

Status copy_to_host(void* dst, const void* src, uint64_t bytes, StreamHandle stream) {
  if (bytes == 0) return ok_status();
  return cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream),
                     "cudaMemcpy device to host");
}

Status copy_on_device(void* dst, const void* src, uint64_t bytes, StreamHandle stream) {
  if (bytes == 0) return ok_status();
  return cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream),
                     "cudaMemcpy device to device");
}

Status fill_zero(void* dst, uint64_t bytes, StreamHandle stream) {
  if (bytes == 0) return ok_status();
  return cuda_status(cudaMemsetAsync(dst, 0, bytes, stream), "cudaMemset");
}

Result<DeviceBuffer> upload(const void* src, uint64_t bytes, std::string_view what,
                            StreamHandle stream) {
  DeviceBuffer b = ICAM_TRY(DeviceBuffer::allocate(bytes, what));
  ICAM_TRY(copy_to_device(b.data(), src, bytes, stream));
  return std::move(b);  // C++17 (nvcc): no implicit move into Result<T>
}

}  // namespace icam::gpu
