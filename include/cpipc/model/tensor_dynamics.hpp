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

// Cellpose 3's resample=False: masks from flows at the network's (rescaled)
// size, resized to height x width by nearest neighbour (cv2.INTER_NEAREST),
// then holes filled and masks below params.min_size removed at that size
// (resize_and_compute_masks). The labels come back on the flows' device.
[[nodiscard]] TensorLabels resized_masks_from_flows(const at::Tensor& flows, const dynamics::Params& params,
                                                    std::int64_t height, std::int64_t width);

// 3-D: `flows` is float32 [4, Z, Y, X] (dZ, dY, dX, cellprob logit); labels
// int32 [Z, Y, X] on the flows' device. params.flow_threshold is ignored
// (Cellpose has no flow-error QC in 3-D).
[[nodiscard]] TensorLabels masks_from_flows_3d(const at::Tensor& flows, const dynamics::Params& params = {});

// 3-D resample=False: masks at the flows' size, resized to depth x height x
// width by nearest neighbour, then holes filled and small masks removed
// there (Cellpose's resize_and_compute_masks in 3-D).
[[nodiscard]] TensorLabels resized_masks_from_flows_3d(const at::Tensor& flows, const dynamics::Params& params,
                                                       std::int64_t depth, std::int64_t height, std::int64_t width);

// Cellpose's utils.remove_edge_masks (its CLI's --exclude_on_edges): masks
// with a pixel on the image's border (any face of a [Z, Y, X] volume) become
// background, the others are renumbered 1..n in their order. On the labels'
// device.
void remove_edge_masks(TensorLabels& labels);

}  // namespace cpipc::model
