// A z-stack to 3-D masks, Cellpose's two ways (shared/CELLPOSE.md, its eval
// with do_3D or stitch_threshold):
//  - do_3d: the network on every YX, ZY and ZX plane (Z rescaled by the
//    anisotropy), the flows of the three passes summed into dZ, dY, dX and
//    cellprob, optionally smoothed, then 3-D dynamics;
//  - stitch_threshold > 0: 2-D masks per plane, stitched across planes by
//    IoU, small masks removed in 3-D.
// Both normalise the stack as one (Cellpose's norm3D).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "cpipc/io/array.hpp"
#include "cpipc/model/segmenter.hpp"

namespace cpipc::model {

struct VolumeOptions {
  // Channels, diameter, normalisation, tiles, dynamics, resample, augment,
  // exclude_on_edges, keep_flows and progress as for a 2-D image. A
  // diameter <= 0 means the model's own (no size model for stacks, as
  // Cellpose estimates none in 3-D). labels_on_device is ignored.
  SegmentOptions base;
  bool do_3d = false;
  float stitch_threshold = 0.0f;  // > 0 without do_3d: stitch per-plane masks by IoU
  double anisotropy = 1.0;        // Z spacing over XY spacing (2.0: planes twice as far apart as pixels)
  // Gaussian sigma (Z, Y, X) applied to the summed flows (do_3d); 0 = none.
  std::array<double, 3> flow3d_smooth{0.0, 0.0, 0.0};
};

struct VolumeSegmentation {
  std::int64_t depth = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::vector<std::uint32_t> labels;  // [Z, H, W], 0 background, 1..count
  std::uint32_t count = 0;
  // keep_flows: do_3d [4, Z, H, W] dZ, dY, dX, cellprob; stitched [3, Z, H, W] dY, dX,
  // cellprob of each plane's own 2-D pass
  std::vector<float> flows;
  double diameter = 0.0;  // px
  float rescale = 1.0f;
  int niter = 0;
  int tiles = 0;  // network tiles over all planes and passes
  Segmentation::Timings timings;

  // Cellpose's dtype rule: uint16 below 65 536 labels.
  [[nodiscard]] bool fits_uint16() const noexcept { return count < 65536; }
};

// Segments `stack`, [Z, H, W] or [Z, H, W, C], in 3-D: options.do_3d or
// options.stitch_threshold > 0 (one of them). Throws Error(invalid_argument)
// for a stack or options that cannot be segmented, Error(out_of_memory) for a
// stack too large for this process or device (refused before it starts),
// Error(cancelled) when the progress callback throws it.
[[nodiscard]] VolumeSegmentation segment_volume(const Segmenter& segmenter, const io::Array& stack,
                                                const VolumeOptions& options);

}  // namespace cpipc::model
