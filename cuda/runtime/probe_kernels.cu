#include <cuda_runtime_api.h>

#include "check.cuh"
#include "cpipc/cuda/device.hpp"

namespace cpipc::cuda {

namespace {
__global__ void fill_affine(std::uint32_t* out, std::size_t n, std::uint32_t mul, std::uint32_t add) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = static_cast<std::uint32_t>(i) * mul + add;
}
}  // namespace

std::vector<std::uint32_t> run_probe_kernel(std::size_t n, std::uint32_t mul, std::uint32_t add) {
  std::vector<std::uint32_t> host(n);
  if (n == 0) return host;
  std::uint32_t* dev = nullptr;
  CPIPC_CUDA_TRY(cudaSetDevice(0));
  CPIPC_CUDA_TRY(cudaMalloc(&dev, n * sizeof(std::uint32_t)));
  struct Free {
    std::uint32_t* p;
    ~Free() { cudaFree(p); }
  } guard{dev};
  const unsigned threads = 256;
  const auto blocks = static_cast<unsigned>((n + threads - 1) / threads);
  fill_affine<<<blocks, threads>>>(dev, n, mul, add);
  CPIPC_CUDA_TRY(cudaGetLastError());
  CPIPC_CUDA_TRY(cudaMemcpy(host.data(), dev, n * sizeof(std::uint32_t), cudaMemcpyDeviceToHost));
  return host;
}

}  // namespace cpipc::cuda
