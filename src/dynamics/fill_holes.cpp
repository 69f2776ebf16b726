// min_size removal and hole filling (Cellpose's fill_holes_and_remove_small_masks).
#include <vector>

#include "cpipc/dynamics/dynamics.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

namespace {

void remove_small(Labels& labels, int min_size) {
  const std::vector<std::int64_t> sizes = detail::label_sizes(labels.data, labels.count);
  std::vector<bool> drop(sizes.size(), false);
  bool any = false;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    if (sizes[l] < min_size) drop[l] = any = true;
  }
  if (any) detail::drop_labels(labels.data, drop);
  renumber(labels);
}

// A plane's box as a volume's.
detail::Box3 box3(const detail::Box& b) { return {0, 1, b.y0, b.y1, b.x0, b.x1}; }

}  // namespace

namespace detail {

void fill_holes(std::uint32_t* data, int height, int width, const Box3& b, std::uint32_t l, bool volume,
                std::vector<std::uint8_t>& reach, std::vector<std::int64_t>& stack, std::vector<std::int64_t>* sizes,
                bool* claimed) {
  const int bd = b.z1 - b.z0, bh = b.y1 - b.y0, bw = b.x1 - b.x0;
  const std::int64_t plane = static_cast<std::int64_t>(bh) * bw;
  reach.assign(static_cast<std::size_t>(plane * bd), 0);
  stack.clear();
  const auto at = [&](int z, int y, int x) -> std::uint32_t& {
    return data[(static_cast<std::size_t>(b.z0 + z) * height + (b.y0 + y)) * width + (b.x0 + x)];
  };
  const auto seed = [&](int z, int y, int x) {
    const std::int64_t i = z * plane + static_cast<std::int64_t>(y) * bw + x;
    if (!reach[static_cast<std::size_t>(i)] && at(z, y, x) != l) {
      reach[static_cast<std::size_t>(i)] = 1;
      stack.push_back(i);
    }
  };
  for (int z = 0; z < bd; ++z) {
    const bool face = volume && (z == 0 || z == bd - 1);
    for (int y = 0; y < bh; ++y) {
      if (face || y == 0 || y == bh - 1) {
        for (int x = 0; x < bw; ++x) seed(z, y, x);
      } else {
        seed(z, y, 0);
        seed(z, y, bw - 1);
      }
    }
  }
  while (!stack.empty()) {
    const std::int64_t i = stack.back();
    stack.pop_back();
    const int z = static_cast<int>(i / plane);
    const int y = static_cast<int>(i % plane / bw);
    const int x = static_cast<int>(i % bw);
    if (z > 0) seed(z - 1, y, x);
    if (z + 1 < bd) seed(z + 1, y, x);
    if (y > 0) seed(z, y - 1, x);
    if (y + 1 < bh) seed(z, y + 1, x);
    if (x > 0) seed(z, y, x - 1);
    if (x + 1 < bw) seed(z, y, x + 1);
  }
  for (int z = 0; z < bd; ++z) {
    for (int y = 0; y < bh; ++y) {
      for (int x = 0; x < bw; ++x) {
        if (reach[static_cast<std::size_t>(z * plane + static_cast<std::int64_t>(y) * bw + x)]) continue;
        std::uint32_t& v = at(z, y, x);
        if (sizes && v != l) {
          ++(*sizes)[l];
          if (v != 0) {
            --(*sizes)[v];
            *claimed = true;
          }
        }
        v = l;
      }
    }
  }
}

}  // namespace detail

void fill_holes_and_remove_small_masks(Labels& labels, int min_size) {
  if (min_size > 0) remove_small(labels, min_size);
  // Boxes are taken once, before any filling, as Cellpose's find_objects.
  const std::vector<detail::Box> boxes = detail::bounding_boxes(labels.data, labels.height, labels.width, labels.count);
  std::vector<std::uint8_t> reach;
  std::vector<std::int64_t> stack;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    if (boxes[l].y1 > boxes[l].y0) {
      detail::fill_holes(labels.data.data(), labels.height, labels.width, box3(boxes[l]), l, false, reach, stack);
    }
  }
  if (min_size > 0) {
    remove_small(labels, min_size);
  } else {
    renumber(labels);  // a mask swallowed whole by its neighbour leaves a gap
  }
}

namespace detail {

void fill_holes_and_remove_small_masks(Labels& labels, int min_size, Stats& stats) {
  if (min_size > 0) {
    std::vector<bool> drop(static_cast<std::size_t>(labels.count) + 1, false);
    for (std::uint32_t l = 1; l <= labels.count; ++l) drop[l] = stats.sizes[l] < min_size;
    drop_and_compact(labels, drop, stats);
  }
  // Boxes as before any filling (Cellpose's find_objects); filling keeps
  // the sizes. Filling background inside a mask keeps the order of first
  // appearance (a hole has a pixel of its mask above it); taking another
  // label's pixels may not, and then the labels are renumbered in full.
  std::vector<std::uint8_t> reach;
  std::vector<std::int64_t> stack;
  bool claimed = false;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    if (stats.boxes[l].y1 > stats.boxes[l].y0) {
      fill_holes(labels.data.data(), labels.height, labels.width, box3(stats.boxes[l]), l, false, reach, stack,
                 &stats.sizes, &claimed);
    }
  }
  std::vector<bool> drop(static_cast<std::size_t>(labels.count) + 1, false);
  bool any = false;
  if (min_size > 0) {
    for (std::uint32_t l = 1; l <= labels.count; ++l) {
      if (stats.sizes[l] < min_size) drop[l] = any = true;
    }
  }
  if (!claimed) {
    if (any) drop_and_compact(labels, drop, stats);
    return;
  }
  if (any) drop_labels(labels.data, drop);
  renumber(labels);
}

}  // namespace detail

}  // namespace cpipc::dynamics
