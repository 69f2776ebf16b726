// What both stats backends gather per object (the CPU in stats.cpp, CUDA in
// cuda/post/stats.cu): integer sums and counts, exact in any order, and the
// intensity sums, which each backend adds in raster order. finish() is the
// one place they become ObjectStats, so the backends agree to the bit.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>

#include "cpipc/post/stats.hpp"

namespace cpipc::post::detail {

struct ObjectSums {
  std::uint32_t label = 0;
  std::int64_t area = 0;
  std::int64_t sum_y = 0;
  std::int64_t sum_x = 0;
  int bbox_y0 = 0;  // start at height / width, shrink as pixels come
  int bbox_x0 = 0;
  int bbox_y1 = 0;
  int bbox_x1 = 0;
  // Border pixels by their perimeter weight (skimage.measure.perimeter):
  // 1, sqrt(2) and (1 + sqrt(2)) / 2.
  std::int64_t perimeter_one = 0;
  std::int64_t perimeter_sqrt2 = 0;
  std::int64_t perimeter_half = 0;
};

// `sum_i`, `min_i`, `max_i`: `channels` values of this object (may be null
// when channels is 0).
inline ObjectStats finish(const ObjectSums& s, const double* sum_i, const float* min_i, const float* max_i,
                          std::size_t channels) {
  ObjectStats o;
  o.label = s.label;
  o.area = s.area;
  o.bbox_y0 = s.bbox_y0;
  o.bbox_x0 = s.bbox_x0;
  o.bbox_y1 = s.bbox_y1;
  o.bbox_x1 = s.bbox_x1;
  const double area = static_cast<double>(s.area);
  o.centroid_y = static_cast<double>(s.sum_y) / area;
  o.centroid_x = static_cast<double>(s.sum_x) / area;
  const double sqrt2 = std::numbers::sqrt2;
  o.perimeter = static_cast<double>(s.perimeter_one) + static_cast<double>(s.perimeter_sqrt2) * sqrt2 +
                static_cast<double>(s.perimeter_half) * ((1 + sqrt2) / 2);
  o.equivalent_diameter = std::sqrt(4 * area / std::numbers::pi);
  o.intensity.resize(channels);
  for (std::size_t ch = 0; ch < channels; ++ch) o.intensity[ch] = {sum_i[ch] / area, min_i[ch], max_i[ch]};
  return o;
}

}  // namespace cpipc::post::detail
