// Turns a CUDA status into cpipc::Error naming the failing call, file and
// line; an allocation failure is Errc::out_of_memory, which callers can act
// on. The error is taken off the thread (cudaGetLastError) so that the next
// call starts clean, as far as CUDA allows (sticky errors stay).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "cpipc/error.hpp"

#define CPIPC_CUDA_TRY(call)                                                                                 \
  do {                                                                                                       \
    const cudaError_t cpipc_status_ = (call);                                                                \
    if (cpipc_status_ != cudaSuccess) {                                                                      \
      (void)cudaGetLastError();                                                                              \
      throw ::cpipc::Error(                                                                                  \
          cpipc_status_ == cudaErrorMemoryAllocation ? ::cpipc::Errc::out_of_memory : ::cpipc::Errc::system, \
          std::string(#call) + " failed at " + __FILE__ + ":" + std::to_string(__LINE__) + ": " +            \
              cudaGetErrorName(cpipc_status_) + " (" + cudaGetErrorString(cpipc_status_) + ")");             \
    }                                                                                                        \
  } while (0)
