#include <cuda_runtime_api.h>

#include "check.cuh"
#include "cpipc/cuda/labels.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cuda {

namespace {

template <class T>
__global__ void convert_labels(const std::int32_t* src, T* dst, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    dst[i] = static_cast<T>(static_cast<std::uint32_t>(src[i]));
  }
}

}  // namespace

void write_labels(const std::int32_t* src, void* dst, std::size_t n, int bits, StreamView stream) {
  if (bits != 16 && bits != 32) throw Error(Errc::invalid_argument, "labels are written as 16 or 32 bits");
  if (n == 0) return;
  const cudaStream_t s = stream.value();
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535));
  if (bits == 16) {
    convert_labels<<<blocks, 256, 0, s>>>(src, static_cast<std::uint16_t*>(dst), n);
  } else {
    convert_labels<<<blocks, 256, 0, s>>>(src, static_cast<std::uint32_t*>(dst), n);
  }
  CPIPC_CUDA_TRY(cudaGetLastError());
}

}  // namespace cpipc::cuda
