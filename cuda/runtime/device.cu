#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>

#include "check.cuh"
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

std::optional<std::size_t> free_memory(int ordinal) noexcept {
  // cudaMemGetInfo answers for the current device: switch for the query
  // only, so the caller's thread keeps the device it had.
  int previous = 0;
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(ordinal) != cudaSuccess) {
    (void)cudaGetLastError();
    return std::nullopt;
  }
  const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  (void)cudaSetDevice(previous);
  (void)cudaGetLastError();
  return known ? std::optional<std::size_t>(free_bytes) : std::nullopt;
}

void synchronize(int ordinal, const std::string& what) {
  int previous = 0;
  CPIPC_CUDA_TRY(cudaGetDevice(&previous));
  CPIPC_CUDA_TRY(cudaSetDevice(ordinal));
  const cudaError_t st = cudaDeviceSynchronize();
  (void)cudaSetDevice(previous);
  if (st != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(st == cudaErrorMemoryAllocation ? Errc::out_of_memory : Errc::system,
                "CUDA failed in " + what + ": " + cudaGetErrorName(st) + " (" + cudaGetErrorString(st) + ")");
  }
}

}  // namespace cpipc::cuda
