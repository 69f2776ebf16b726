// A z-stack segmented plane by plane, as Cellpose's eval segments a 3-D
// image without do_3D or stitching: each plane in 2-D, normalised on its
// own (Cellpose turns norm3D off there), its labels numbered from 1.
#pragma once

#include <cstdint>
#include <vector>

#include "cpipc/io/array.hpp"
#include "cpipc/model/segmenter.hpp"

namespace cpipc::model {

struct PlaneSegmentation {
  std::int64_t planes = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::vector<std::uint32_t> labels;  // [Z, H, W]
  std::vector<std::uint32_t> counts;  // objects per plane
  // Plane 0's diameter, rescale, niter and tiles (its masks moved out);
  // timings summed over the planes.
  Segmentation first;

  [[nodiscard]] std::uint64_t objects() const noexcept;
  // Cellpose's dtype rule over the stack: uint16 while every label fits.
  [[nodiscard]] bool fits_uint16() const noexcept;
};

// Segments `stack`, [Z, H, W] or [Z, H, W, C], plane by plane with
// `options` (labels stay on the host; flows are not kept). Throws what
// Segmenter::segment throws, naming the plane.
[[nodiscard]] PlaneSegmentation segment_planes(const Segmenter& segmenter, const io::Array& stack,
                                               SegmentOptions options);

}  // namespace cpipc::model
