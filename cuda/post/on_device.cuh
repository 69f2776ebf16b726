// What the GPU consumers (stats.cu, outlines.cu) share: choosing the device
// the user named, and Thrust's exceptions as cpipc errors.
#pragma once

#include <cuda_runtime_api.h>
#include <thrust/system_error.h>

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
