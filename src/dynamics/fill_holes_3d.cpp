// Cellpose's fill_holes_and_remove_small_masks on a 3-D label volume: the
// removals by voxel count, and fill_voids' 3-D hole filling per label.
#include <algorithm>
#include <vector>

#include "cpipc/dynamics/stitch.hpp"
#include "volume_detail.hpp"

namespace cpipc::dynamics {

namespace {

// Removes the labels with fewer than min_size voxels (Cellpose 4: by value;
// the smallest value present is skipped as background, whether or not it
// is 0), then renumbers by first appearance.
void remove_small(std::span<std::uint32_t> labels, int min_size) {
  const detail::ValueIndex ix = detail::index_values(labels);
  std::vector<std::int64_t> size(ix.values.size(), 0);
  for (const std::uint32_t k : ix.index) {
    if (k) ++size[k - 1];
  }
  const bool has_background = std::find(ix.index.begin(), ix.index.end(), 0u) != ix.index.end();
  std::vector<bool> drop(ix.values.size(), false);
  for (std::size_t k = has_background ? 0 : 1; k < size.size(); ++k) drop[k] = size[k] < min_size;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (ix.index[i] && drop[ix.index[i] - 1]) labels[i] = 0;
  }
  detail::renumber_by_appearance(labels);
}

// A label's bounding box, [z0, z1) x [y0, y1) x [x0, x1).
struct Box {
  int z0, y0, x0, z1, y1, x1;
};

class HoleFiller {
 public:
  HoleFiller(std::span<std::uint32_t> labels, int height, int width) : labels_(labels), h_(height), w_(width) {}

  // Sets to `to` the voxels of `label` in `b` and those they enclose:
  // background (non-`label`) voxels that a 6-connected flood fill from
  // fill_voids' seeds cannot reach.
  void fill(const Box& b, std::uint32_t label, std::uint32_t to) {
    bd_ = b.z1 - b.z0;
    bh_ = b.y1 - b.y0;
    bw_ = b.x1 - b.x0;
    const std::size_t n = static_cast<std::size_t>(bd_) * bh_ * bw_;
    in_.assign(n, 0);
    reach_.assign(n, 0);
    for (int z = 0; z < bd_; ++z) {
      for (int y = 0; y < bh_; ++y) {
        for (int x = 0; x < bw_; ++x) in_[local(z, y, x)] = at(b, z, y, x) == label;
      }
    }
    seed_faces();
    flood();
    for (int z = 0; z < bd_; ++z) {
      for (int y = 0; y < bh_; ++y) {
        for (int x = 0; x < bw_; ++x) {
          const std::size_t k = local(z, y, x);
          if (in_[k] || !reach_[k]) at(b, z, y, x) = to;
        }
      }
    }
  }

 private:
  std::size_t local(int z, int y, int x) const { return (static_cast<std::size_t>(z) * bh_ + y) * bw_ + x; }
  std::uint32_t& at(const Box& b, int z, int y, int x) {
    return labels_[(static_cast<std::size_t>(b.z0 + z) * h_ + (b.y0 + y)) * w_ + (b.x0 + x)];
  }
  void push(std::size_t k) {
    if (!reach_[k] && !in_[k]) {
      reach_[k] = 1;
      stack_.push_back(k);
    }
  }

  // fill_voids' seeds: each face scanned in its order (its arrays are
  // Fortran-ordered [Z, Y, X], so the inner loop runs along z, then y); a
  // background voxel is a seed only when the voxel scanned before it is
  // not background. So a run that continues from the end of one scan line
  // into the next seeds nothing there, and fill_voids fills the odd edge
  // voxel that only such a run holds; we do the same.
  void seed_faces() {
    const auto scan = [&](int outer, int inner, auto&& voxel) {
      bool placed = false;
      for (int o = 0; o < outer; ++o) {
        for (int i = 0; i < inner; ++i) {
          const std::size_t k = voxel(o, i);
          if (in_[k]) {
            placed = false;
          } else {
            if (!placed && !reach_[k]) {
              reach_[k] = 1;
              stack_.push_back(k);
            }
            placed = true;
          }
        }
      }
    };
    scan(bh_, bd_, [&](int y, int z) { return local(z, y, 0); });
    scan(bh_, bd_, [&](int y, int z) { return local(z, y, bw_ - 1); });
    scan(bw_, bd_, [&](int x, int z) { return local(z, 0, x); });
    scan(bw_, bd_, [&](int x, int z) { return local(z, bh_ - 1, x); });
    scan(bw_, bh_, [&](int x, int y) { return local(0, y, x); });
    scan(bw_, bh_, [&](int x, int y) { return local(bd_ - 1, y, x); });
  }

  void flood() {
    const std::size_t plane = static_cast<std::size_t>(bh_) * bw_;
    while (!stack_.empty()) {
      const std::size_t k = stack_.back();
      stack_.pop_back();
      const int z = static_cast<int>(k / plane);
      const int y = static_cast<int>(k % plane / bw_);
      const int x = static_cast<int>(k % bw_);
      if (z > 0) push(k - plane);
      if (z + 1 < bd_) push(k + plane);
      if (y > 0) push(k - bw_);
      if (y + 1 < bh_) push(k + bw_);
      if (x > 0) push(k - 1);
      if (x + 1 < bw_) push(k + 1);
    }
  }

  std::span<std::uint32_t> labels_;
  int h_, w_;
  int bd_ = 0, bh_ = 0, bw_ = 0;
  std::vector<std::uint8_t> in_, reach_;
  std::vector<std::size_t> stack_;
};

}  // namespace

std::uint32_t fill_holes_and_remove_small_masks_3d(std::span<std::uint32_t> labels, int depth, int height, int width,
                                                   int min_size) {
  detail::check_volume(labels, depth, height, width, "fill_holes_and_remove_small_masks_3d");
  if (labels.empty()) return 0;
  if (min_size > 0) remove_small(labels, min_size);
  // Boxes as before any filling (Cellpose's find_objects), labels ascending.
  const detail::ValueIndex ix = detail::index_values(labels);
  std::vector<Box> boxes(ix.values.size(), Box{depth, height, width, 0, 0, 0});
  std::size_t i = 0;
  for (int z = 0; z < depth; ++z) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x, ++i) {
        if (!ix.index[i]) continue;
        Box& b = boxes[ix.index[i] - 1];
        b.z0 = std::min(b.z0, z);
        b.y0 = std::min(b.y0, y);
        b.x0 = std::min(b.x0, x);
        b.z1 = std::max(b.z1, z + 1);
        b.y1 = std::max(b.y1, y + 1);
        b.x1 = std::max(b.x1, x + 1);
      }
    }
  }
  // Each label becomes its rank: never a value a later (larger) label has.
  HoleFiller filler(labels, height, width);
  for (std::size_t k = 0; k < boxes.size(); ++k) {
    filler.fill(boxes[k], ix.values[k], static_cast<std::uint32_t>(k + 1));
  }
  if (min_size > 0) remove_small(labels, min_size);
  return detail::count_objects(labels);
}

}  // namespace cpipc::dynamics
