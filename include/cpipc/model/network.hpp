// Cellpose's run_net on one image: rescale, pad, overlapping tiles in
// batches, taper blend, crop, resize back (shared/CELLPOSE.md, "Eval
// pipeline"). Everything stays on the model's device.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

#include "cpipc/model/model.hpp"

namespace cpipc::model {

struct NetworkOptions {
  // diam_mean / diameter; the image is resized by it to int(L * rescale),
  // computed in float32 (a given diameter) or, with rescale_float64, in
  // float64 (an estimated diameter), as numpy does in each case.
  double rescale = 1.0;
  bool rescale_float64 = false;
  bool resample = true;       // flows back at the input's size; false: they stay at the rescaled size
  double tile_overlap = 0.1;  // fraction, clipped to [0.05, 0.5]
  int batch_size = 8;         // tiles per forward
  // Cellpose's augment: half-overlapping tiles, flipped by their parity
  // (the flows unflipped, their flipped component negated), averaged.
  bool augment = false;
  // Cellpose 4: an image smaller than a tile is padded up to one tile.
  bool pad_to_tile = false;
  // Called after each batch with (tiles done, tiles in all).
  std::function<void(int, int)> on_tiles;
};

struct NetworkResult {
  at::Tensor flows;  // float32 [3, H, W] ([N, 3, H, W] for N images) at the input's size (rescaled
                     // without resample): dY, dX, cellprob logit
  at::Tensor style;  // float32 [S], L2-normalised sum over tiles (of all N images); zeros if the net has none
  int tiles = 0;
};

// `input` is float32 [C, H, W] (the normalised network input) on the model's
// device, or [N, C, H, W]: N images of one size, their tiles batched
// together (a stack's planes, as Cellpose's run_net batches them). Throws Error(invalid_argument) if the rescaled image
// is empty or the network breaks its contract.
[[nodiscard]] NetworkResult run_network(const Model& model, const at::Tensor& input, const NetworkOptions& options);

// Bilinear resize of float32 [C, H, W] planes to height x width, as
// Cellpose's resize_image (cv2.INTER_LINEAR) resizes images and flows.
[[nodiscard]] at::Tensor resize_planes(const at::Tensor& planes, std::int64_t height, std::int64_t width);

}  // namespace cpipc::model
