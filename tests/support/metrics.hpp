// Segmentation metrics for tests: the library's, under a short name.
#pragma once

#include <cstdint>
#include <span>

#include "cpipc/post/metrics.hpp"

namespace cpipc::test {

// Cellpose's AP at IoU 0.5 between a reference and a prediction.
[[nodiscard]] inline double ap50(std::span<const std::uint32_t> truth, std::span<const std::uint32_t> pred) {
  return post::match_at_iou50(truth, pred).ap();
}

}  // namespace cpipc::test
