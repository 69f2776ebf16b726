// Turns a CUDA status into cpipc::Error naming the failing call.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "cpipc/error.hpp"

#define CPIPC_CUDA_TRY(call)                                                                                           \
  do {                                                                                                                 \
    const cudaError_t cpipc_status_ = (call);                                                                          \
    if (cpipc_status_ != cudaSuccess) {                                                                                \
      throw ::cpipc::Error(::cpipc::Errc::system, std::string(#call) + " failed: " + cudaGetErrorName(cpipc_status_) + \
                                                      " (" + cudaGetErrorString(cpipc_status_) + ")");                 \
    }                                                                                                                  \
  } while (0)
