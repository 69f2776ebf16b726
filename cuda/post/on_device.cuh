// What the GPU consumers (stats.cu, outlines.cu) share: choosing the device
// the user named, widening labels, and Thrust's exceptions as cpipc errors.
#pragma once

#include <cuda_runtime_api.h>
#include <thrust/system_error.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

#include "../runtime/check.cuh"
#include "cpipc/cuda/device.hpp"
#include "cpipc/error.hpp"

namespace cpipc::cuda::detail {

// Makes device `ordinal` current; one line saying what to do if there is none.
inline void use_device(int ordinal) {
  std::string why;
  const int devices = device_count(&why);
  if (ordinal < 0 || ordinal >= devices) {
    throw Error(Errc::invalid_argument, "no CUDA device " + std::to_string(ordinal) + " here (" +
                                            (why.empty() ? std::to_string(devices) + " visible" : why) +
                                            "); use --device cpu");
  }
  CPIPC_CUDA_TRY(cudaSetDevice(ordinal));
}

// out[i] = in[i] for labels of any unsigned width (grid-stride).
template <class T>
__global__ void widen(const T* in, std::uint32_t* out, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    out[i] = in[i];
  }
}

// Runs `f`, turning Thrust's allocation and CUDA failures into cpipc errors
// (out_of_memory where the device ran out) named after `what`.
template <class F>
auto thrust_errors_as_cpipc(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const thrust::system_error& e) {
    throw Error(e.code().value() == cudaErrorMemoryAllocation ? Errc::out_of_memory : Errc::system,
                std::string(what) + " on the GPU: " + e.what());
  } catch (const std::bad_alloc&) {
    throw Error(Errc::out_of_memory, std::string(what) + " on the GPU: out of device memory");
  }
}

}  // namespace cpipc::cuda::detail
