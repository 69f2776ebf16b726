// Small label-image helpers shared by the dynamics steps.
#pragma once

#include <cstdint>
#include <vector>

namespace cpipc::dynamics::detail {

// Pixel count per label 0..max_label (labels above max_label are ignored).
std::vector<std::int64_t> label_sizes(const std::vector<std::uint32_t>& labels, std::uint32_t max_label);

// Sets to 0 every pixel whose label l has drop[l] (labels past drop.size() stay).
void drop_labels(std::vector<std::uint32_t>& labels, const std::vector<bool>& drop);

// Bounding boxes of labels 1..count: rows [y0, y1), cols [x0, x1); empty
// labels get y0 == y1.
struct Box {
  int y0, y1, x0, x1;
};
std::vector<Box> bounding_boxes(const std::vector<std::uint32_t>& labels, int height, int width, std::uint32_t count);

}  // namespace cpipc::dynamics::detail
