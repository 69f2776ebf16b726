#include <algorithm>
#include <unordered_map>

#include "cpipc/dynamics/dynamics.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

void renumber(Labels& labels) {
  // Dense map when labels are small (always, after our own steps); a hash map otherwise.
  std::uint32_t max_label = 0;
  for (std::uint32_t v : labels.data) max_label = std::max(max_label, v);
  std::uint32_t next = 0;
  if (max_label <= labels.data.size() + 1) {
    std::vector<std::uint32_t> map(static_cast<std::size_t>(max_label) + 1, 0);
    for (std::uint32_t& v : labels.data) {
      if (v == 0) continue;
      if (map[v] == 0) map[v] = ++next;
      v = map[v];
    }
  } else {
    std::unordered_map<std::uint32_t, std::uint32_t> map;
    for (std::uint32_t& v : labels.data) {
      if (v == 0) continue;
      auto [it, inserted] = map.try_emplace(v, next + 1);
      if (inserted) ++next;
      v = it->second;
    }
  }
  labels.count = next;
}

namespace detail {

std::vector<std::int64_t> label_sizes(const std::vector<std::uint32_t>& labels, std::uint32_t max_label) {
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(max_label) + 1, 0);
  for (std::uint32_t v : labels) {
    if (v <= max_label) ++sizes[v];
  }
  return sizes;
}

void drop_labels(std::vector<std::uint32_t>& labels, const std::vector<bool>& drop) {
  for (std::uint32_t& v : labels) {
    if (v < drop.size() && drop[v]) v = 0;
  }
}

std::vector<Box> bounding_boxes(const std::vector<std::uint32_t>& labels, int height, int width, std::uint32_t count) {
  std::vector<Box> boxes(static_cast<std::size_t>(count) + 1, Box{height, 0, width, 0});
  for (int y = 0; y < height; ++y) {
    const std::uint32_t* row = &labels[static_cast<std::size_t>(y) * width];
    for (int x = 0; x < width; ++x) {
      const std::uint32_t v = row[x];
      if (v == 0 || v > count) continue;
      Box& b = boxes[v];
      b.y0 = std::min(b.y0, y);
      b.y1 = std::max(b.y1, y + 1);
      b.x0 = std::min(b.x0, x);
      b.x1 = std::max(b.x1, x + 1);
    }
  }
  for (Box& b : boxes) {
    if (b.y1 == 0) b = Box{0, 0, 0, 0};
  }
  return boxes;
}

}  // namespace detail
}  // namespace cpipc::dynamics
