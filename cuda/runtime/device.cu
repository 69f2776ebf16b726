#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>

#include "cpipc/cuda/device.hpp"

namespace cpipc::cuda {

bool built_with_cuda() noexcept { return true; }

int device_count(std::string* why) noexcept {
  int n = 0;
  const cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA device (") + cudaGetErrorName(st) + ": " + cudaGetErrorString(st) + ")";
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device found";
  return n;
}

std::optional<DeviceInfo> device_info(int ordinal) noexcept {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess) {
    cudaGetLastError();
    return std::nullopt;
  }
  DeviceInfo info;
  info.ordinal = ordinal;
  info.name = prop.name;
  std::memcpy(info.uuid.data(), prop.uuid.bytes, 16);
  info.total_memory = prop.totalGlobalMem;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  return info;
}

}  // namespace cpipc::cuda
