// Small label-image helpers shared by the dynamics steps.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
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

// A box in a [depth, height, width] volume: planes [z0, z1), rows [y0, y1),
// cols [x0, x1). A 2-D image is one plane.
struct Box3 {
  int z0, z1, y0, y1, x0, x1;
};

// Fills the holes of label `l` inside its box of `data` (a volume of
// height x width planes): voxels not of `l` that a flood fill of the
// background from the box's faces cannot reach, 4-connected in a plane and
// 6-connected in a stack (fill_voids' rule; `volume` says which, and in a
// volume the z faces are faces too). Like fill_voids, this also claims other
// labels that `l` encloses. With `sizes`, keeps them up to date and sets
// `claimed` when a voxel of another label is taken. `reach` and `stack` are
// scratch.
void fill_holes(std::uint32_t* data, int height, int width, const Box3& b, std::uint32_t l, bool volume,
                std::vector<std::uint8_t>& reach, std::vector<std::int64_t>& stack,
                std::vector<std::int64_t>* sizes = nullptr, bool* claimed = nullptr);

// Cellpose's checks of the parameters and of the network's output: throws
// Error(invalid_argument) for bad parameters (niter < 0, max_size_fraction
// <= 0, thresholds not finite or flow_threshold < 0), and for NaN or
// infinite values in any of `planes` (all of one size), naming the first.
void check_params(const Params& p);
void check_finite(std::initializer_list<std::span<const float>> planes);

// The flat indices of the pixels with cellprob above `threshold`, ascending.
std::vector<std::int64_t> foreground(std::span<const float> cellprob, float threshold);

// From this many values on, torch's CPU argsort of a 1-D integer tensor is
// fbgemm's radix sort, which is stable (at::internal::GRAIN_SIZE).
constexpr std::size_t kTorchRadixSortFrom = 32768;

// Orders seeds (listed in raster order) by their histogram count as
// Cellpose's torch argsort does: below kTorchRadixSortFrom seeds it is not
// stable, torch's CPU sort being libstdc++'s std::sort over (value, index)
// pairs compared by value alone, and doing the same gives the same order
// among equal counts, and so the same winner where seed regions overlap;
// from there on, a stable sort.
template <class Index>
void sort_seeds_by_count(std::vector<Index>& seeds, const std::int32_t* hist) {
  struct Keyed {
    std::int32_t count;
    Index seed;
  };
  std::vector<Keyed> keyed(seeds.size());
  for (std::size_t i = 0; i < seeds.size(); ++i) keyed[i] = {hist[static_cast<std::size_t>(seeds[i])], seeds[i]};
  const auto by_count = [](const Keyed& a, const Keyed& b) { return a.count < b.count; };
  if (keyed.size() >= kTorchRadixSortFrom) {
    std::stable_sort(keyed.begin(), keyed.end(), by_count);
  } else {
    std::sort(keyed.begin(), keyed.end(), by_count);
  }
  for (std::size_t i = 0; i < seeds.size(); ++i) seeds[i] = keyed[i].seed;
}

// Counts the final positions' bins into `hist` (`size` bins, zeroed first)
// and lists the bins with more than `min_count` of them, each once, in the
// order they are first hit: the only bins that can be seeds.
template <class Bin>
std::vector<Bin> count_bins(std::span<const Bin> bin, std::int32_t* hist, std::size_t size, std::int32_t min_count) {
  std::fill(hist, hist + size, 0);
  for (const Bin b : bin) ++hist[b];
  std::vector<Bin> over;
  for (const Bin b : bin) {
    std::int32_t& c = hist[b];
    if (c > min_count) {  // negated while listed: taken once
      over.push_back(b);
      c = -c;
    }
  }
  for (const Bin b : over) hist[b] = -hist[b];
  return over;
}

// For labels 1..count: removes the labels with drop[l] from `data` and
// numbers the rest 1..N keeping their order; sizes and boxes (indexed by
// label) follow. Returns N.
template <class BoxT>
std::uint32_t drop_and_compact(std::vector<std::uint32_t>& data, std::uint32_t count, const std::vector<bool>& drop,
                               std::vector<std::int64_t>& sizes, std::vector<BoxT>& boxes) {
  std::vector<std::uint32_t> map(static_cast<std::size_t>(count) + 1, 0);
  std::uint32_t next = 0;
  for (std::uint32_t l = 1; l <= count; ++l) {
    if (drop[l]) continue;
    map[l] = ++next;
    sizes[next] = sizes[l];
    boxes[next] = boxes[l];
  }
  if (next == count) return count;
  sizes.resize(static_cast<std::size_t>(next) + 1);
  boxes.resize(static_cast<std::size_t>(next) + 1);
  std::uint32_t* d = data.data();
  const auto n = static_cast<std::int64_t>(data.size());
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) d[i] = map[d[i]];
  return next;
}

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
