// Cellpose's dynamics on LibTorch tensors: flows in, labels out, on the
// tensor's device (the CUDA backend on a CUDA tensor, on the current
// stream, nothing copied to the host; the CPU backend otherwise).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "cpipc/dynamics/dynamics.hpp"

namespace cpipc::model {

struct TensorLabels {
  at::Tensor labels;        // int32 [H, W] on the flows' device; values 0..count (uint32 bits)
  std::uint32_t count = 0;  // number of masks
};

// `flows` is float32 [3, H, W] (dY, dX, cellprob logit). Throws
// Error(invalid_argument) for another shape or dtype, NaN or infinite
// flows, bad parameters, or a CUDA tensor in a build without CUDA dynamics.
[[nodiscard]] TensorLabels masks_from_flows(const at::Tensor& flows, const dynamics::Params& params = {});

}  // namespace cpipc::model
