// Cellpose 3's diameter estimation (models.SizeModel.eval): the style vector
// through a linear regression gives a first diameter; the image segmented at
// that diameter gives masks whose median diameter is the estimate.
#pragma once

#include <ATen/core/Tensor.h>

#include <span>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/model/model.hpp"
#include "cpipc/model/network.hpp"

namespace cpipc::model {

// SizeModel._size_estimation: exp(A . (style - smean) + log(diam_mean) +
// ymean) px, at least 5; diam_mean when that is 0 or NaN. Throws
// Error(invalid_argument) when the style's length is not the model's.
[[nodiscard]] double style_diameter(const SizeModel& size_model, std::span<const float> style);

// utils.diameters: the median over masks of sqrt(area), divided by
// sqrt(pi) / 2 (px); 0 without masks. As Cellpose, the smallest label's
// count is the one left out (the background's, unless every pixel is in a mask).
[[nodiscard]] double median_diameter(const dynamics::Labels& masks);

// cv2.resize(..., INTER_NEAREST) of a label image (source index
// floor(d * src / dst) per axis, computed as OpenCV does).
[[nodiscard]] dynamics::Labels resize_labels_nearest(const dynamics::Labels& labels, int height, int width);

struct DiameterEstimate {
  double diameter = 0.0;        // px: the masks' median diameter (SizeModel.eval's diam)
  double style_diameter = 0.0;  // px: the regression's (diam_style)
};

// SizeModel.eval on the normalised network input `x` (float32 [C, H, W] on
// the model's device): styles at rescale diam_mean / diam_labels, the
// regression, then the network at rescale diam_mean / diam_style without
// resampling, Cellpose 3's dynamics without interpolation (its defaults,
// niter 200), masks resized back to H x W, min_size 15, median diameter;
// the size model's diam_mean for no masks. `base` supplies the tile overlap,
// batch size and progress callback. Throws what run_network throws, and
// Error(invalid_argument) when the model has no size model.
[[nodiscard]] DiameterEstimate estimate_diameter(const Model& model, const at::Tensor& x, const NetworkOptions& base);

}  // namespace cpipc::model
