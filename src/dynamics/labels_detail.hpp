// Small label-image helpers shared by the dynamics steps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpipc/dynamics/dynamics.hpp"

namespace cpipc::dynamics::detail {

// Padding of the histogram of final positions (Cellpose's get_masks), pixels.
constexpr int kHistPad = 20;

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

// Pixel counts and bounding boxes of labels 0..count (box 0 unused).
struct Stats {
  std::vector<std::int64_t> sizes;
  std::vector<Box> boxes;
};

// For labels numbered 1..count in order of first appearance: removes the
// labels with drop[l] and numbers the rest 1..N in the same order (which is
// their order of first appearance still), in one pass; `stats` follow.
void drop_and_compact(Labels& labels, const std::vector<bool>& drop, Stats& stats);

// Scratch memory for the big per-image buffers, shared by the steps one
// after another (the field, then the histogram, then the heat), so that a
// fresh process faults its pages in once; on Linux, advised to use huge
// pages. Contents are undefined on acquire.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace();
  void* get(std::size_t bytes);  // 64-byte aligned; valid until the next get

 private:
  void release();
  void* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
};

}  // namespace cpipc::dynamics::detail
