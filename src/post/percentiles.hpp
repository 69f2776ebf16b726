// numpy.percentile of float32 values, shared by the pictures cpipc_post
// draws as Cellpose does (outlines over the image, the flow field).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "cpipc/util/order_statistics.hpp"

namespace cpipc::post::detail {

// numpy.percentile(values, q) (method "linear") of float32 values, to the
// bit: the virtual index (n - 1) * q / 100 in double, the two neighbours in
// sorted order, and numpy's _lerp in float32 (from the far end when the
// fraction is 0.5 or more). Both percentiles from one selection. `values`
// must not be empty nor hold NaN.
inline std::pair<float, float> percentiles(const std::vector<float>& values, int q_low, int q_high) {
  const std::size_t n = values.size();
  struct At {
    std::size_t lo;
    double gamma;
    bool last;  // q = 100: the maximum
  };
  const auto at = [n](int q) {
    const double index = static_cast<double>(n - 1) * (q / 100.0);
    if (index >= static_cast<double>(n - 1)) return At{n - 1, 0.0, true};
    const auto lo = static_cast<std::size_t>(std::floor(index));
    return At{lo, index - static_cast<double>(lo), false};
  };
  const At a = at(q_low);
  const At b = at(q_high);
  const auto v =
      util::order_statistics<4>(values.data(), n, {a.lo, std::min(a.lo + 1, n - 1), b.lo, std::min(b.lo + 1, n - 1)});
  const auto lerp = [](const At& x, float lo, float hi) {
    if (x.last) return lo;
    const float diff = hi - lo;
    return x.gamma >= 0.5 ? hi - diff * static_cast<float>(1 - x.gamma) : lo + diff * static_cast<float>(x.gamma);
  };
  return {lerp(a, v[0], v[1]), lerp(b, v[2], v[3])};
}

}  // namespace cpipc::post::detail
