#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "gpu/cuda_device.h"

namespace icam::gpu {
namespace {

Error cuda_error(cudaError_t err, const char* what) {
  return make_error(Errc::unavailable, "CUDA: ", what, ": ", cudaGetErrorString(err));
}

__global__ void copy_kernel(const float4* __restrict__ in, float4* __restrict__ out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = in[i];
}

// One block per row; the sum of squares is reduced in shared memory.
__global__ void rms_norm_kernel(const float* x, const float* weight, float* out, int n, float eps) {
  extern __shared__ float partial[];
  const float* row = x + static_cast<size_t>(blockIdx.x) * n;
  float* dst = out + static_cast<size_t>(blockIdx.x) * n;
  float sum = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) sum += row[i] * row[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float scale = rsqrtf(partial[0] / n + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = row[i] * scale * weight[i];
}

// Frees device buffers on every path out of a function.
struct DeviceBuffer {
  void* ptr = nullptr;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

}  // namespace

bool compiled_with_cuda() { return true; }

Result<std::vector<DeviceInfo>> list_devices() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver || count == 0)
    return make_error(Errc::unavailable, "no CUDA device (", cudaGetErrorString(err), ")");
  if (err != cudaSuccess) return cuda_error(err, "cudaGetDeviceCount");
  std::vector<DeviceInfo> devices;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if ((err = cudaGetDeviceProperties(&prop, i)) != cudaSuccess)
      return cuda_error(err, "cudaGetDeviceProperties");
    devices.push_back({i, prop.name, static_cast<uint64_t>(prop.totalGlobalMem), prop.major,
                       prop.minor, prop.multiProcessorCount});
  }
  return devices;
}

Result<double> measure_copy_bandwidth(int device, uint64_t bytes, int iterations) {
  ICAM_TRY(list_devices());
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) return cuda_error(err, "cudaSetDevice");
  bytes = std::max<uint64_t>(bytes / 16 * 16, 16);
  DeviceBuffer in, out;
  if ((err = cudaMalloc(&in.ptr, bytes)) != cudaSuccess) return cuda_error(err, "cudaMalloc");
  if ((err = cudaMalloc(&out.ptr, bytes)) != cudaSuccess) return cuda_error(err, "cudaMalloc");
  cudaMemset(in.ptr, 0, bytes);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  const size_t n = bytes / sizeof(float4);
  std::vector<float> seconds;
  for (int i = 0; i < std::max(1, iterations) + 1; ++i) {
    cudaEventRecord(start);
    copy_kernel<<<1024, 256>>>(static_cast<const float4*>(in.ptr), static_cast<float4*>(out.ptr), n);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (i > 0) seconds.push_back(ms / 1000.0f);  // the first run warms up
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if ((err = cudaGetLastError()) != cudaSuccess) return cuda_error(err, "copy kernel");
  std::sort(seconds.begin(), seconds.end());
  return 2.0 * static_cast<double>(bytes) / seconds[seconds.size() / 2];
}

Status rms_norm_host(const float* x, const float* weight, float* out, int rows, int n, float eps) {
  ICAM_TRY(list_devices());
  const size_t bytes = static_cast<size_t>(rows) * n * sizeof(float);
  DeviceBuffer dx, dw, dout;
  cudaError_t err;
  if ((err = cudaMalloc(&dx.ptr, bytes)) != cudaSuccess) return cuda_error(err, "cudaMalloc");
  if ((err = cudaMalloc(&dw.ptr, n * sizeof(float))) != cudaSuccess) return cuda_error(err, "cudaMalloc");
  if ((err = cudaMalloc(&dout.ptr, bytes)) != cudaSuccess) return cuda_error(err, "cudaMalloc");
  cudaMemcpy(dx.ptr, x, bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(dw.ptr, weight, n * sizeof(float), cudaMemcpyHostToDevice);
  const int threads = 256;
  rms_norm_kernel<<<rows, threads, threads * sizeof(float)>>>(
      static_cast<const float*>(dx.ptr), static_cast<const float*>(dw.ptr),
      static_cast<float*>(dout.ptr), n, eps);
  if ((err = cudaGetLastError()) != cudaSuccess) return cuda_error(err, "rms_norm kernel");
  if ((err = cudaMemcpy(out, dout.ptr, bytes, cudaMemcpyDeviceToHost)) != cudaSuccess)
    return cuda_error(err, "cudaMemcpy");
  return ok_status();
}

}  // namespace icam::gpu
