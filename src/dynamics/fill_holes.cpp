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

// Fills the holes of label `l` inside its bounding box: pixels not of `l`
// that background flood fill (4-connected) from the box's border cannot
// reach. Like fill_voids, this also claims other labels enclosed by `l`.
// With `sizes`, keeps them up to date and sets `claimed` when a pixel of
// another label is taken.
void fill_holes(Labels& labels, const detail::Box& b, std::uint32_t l, std::vector<std::uint8_t>& reach,
                std::vector<int>& stack, std::vector<std::int64_t>* sizes = nullptr, bool* claimed = nullptr) {
  const int bh = b.y1 - b.y0;
  const int bw = b.x1 - b.x0;
  const int w = labels.width;
  reach.assign(static_cast<std::size_t>(bh) * bw, 0);
  stack.clear();
  const auto is_l = [&](int y, int x) { return labels.data[static_cast<std::size_t>(b.y0 + y) * w + (b.x0 + x)] == l; };
  const auto seed = [&](int y, int x) {
    const int i = y * bw + x;
    if (!reach[static_cast<std::size_t>(i)] && !is_l(y, x)) {
      reach[static_cast<std::size_t>(i)] = 1;
      stack.push_back(i);
    }
  };
  for (int x = 0; x < bw; ++x) {
    seed(0, x);
    seed(bh - 1, x);
  }
  for (int y = 0; y < bh; ++y) {
    seed(y, 0);
    seed(y, bw - 1);
  }
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    const int y = i / bw;
    const int x = i % bw;
    if (y > 0) seed(y - 1, x);
    if (y + 1 < bh) seed(y + 1, x);
    if (x > 0) seed(y, x - 1);
    if (x + 1 < bw) seed(y, x + 1);
  }
  for (int y = 0; y < bh; ++y) {
    for (int x = 0; x < bw; ++x) {
      if (reach[static_cast<std::size_t>(y) * bw + x]) continue;
      std::uint32_t& v = labels.data[static_cast<std::size_t>(b.y0 + y) * w + (b.x0 + x)];
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

}  // namespace

void fill_holes_and_remove_small_masks(Labels& labels, int min_size) {
  if (min_size > 0) remove_small(labels, min_size);
  // Boxes are taken once, before any filling, as Cellpose's find_objects.
  const std::vector<detail::Box> boxes = detail::bounding_boxes(labels.data, labels.height, labels.width, labels.count);
  std::vector<std::uint8_t> reach;
  std::vector<int> stack;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    if (boxes[l].y1 > boxes[l].y0) fill_holes(labels, boxes[l], l, reach, stack);
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
  std::vector<int> stack;
  bool claimed = false;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    if (stats.boxes[l].y1 > stats.boxes[l].y0)
      fill_holes(labels, stats.boxes[l], l, reach, stack, &stats.sizes, &claimed);
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
