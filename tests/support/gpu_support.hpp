// What the GPU tests share: the skip, with the reason, where there is no GPU.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "cpipc/cuda/device.hpp"

#define SKIP_WITHOUT_GPU()                                                                       \
  do {                                                                                           \
    std::string cpipc_why_;                                                                      \
    if (::cpipc::cuda::device_count(&cpipc_why_) == 0) GTEST_SKIP() << "no GPU: " << cpipc_why_; \
  } while (0)
