#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <unordered_map>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"
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

void check_params(const Params& p) {
  if (p.niter < 0) throw Error(Errc::invalid_argument, "niter must be >= 0");
  if (!(p.max_size_fraction > 0)) throw Error(Errc::invalid_argument, "max_size_fraction must be > 0");
  if (!std::isfinite(p.cellprob_threshold) || !std::isfinite(p.flow_threshold) || p.flow_threshold < 0) {
    throw Error(Errc::invalid_argument, "cellprob_threshold and flow_threshold must be finite, flow_threshold >= 0");
  }
}

void check_finite(std::initializer_list<std::span<const float>> planes) {
  const std::size_t n = planes.size() ? planes.begin()->size() : 0;
  // A vectorised pass over each plane first (a stack's flows are hundreds
  // of MB); the first bad pixel is looked for only when there is one.
  int bad = 0;
  for (const std::span<const float> plane : planes) {
    const float* v = plane.data();
#pragma omp parallel for reduction(| : bad) schedule(static)
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i) {
      bad |= !(std::fabs(v[i]) <= std::numeric_limits<float>::max());
    }
  }
  if (bad == 0) return;
  for (std::size_t i = 0; i < n; ++i) {
    for (const std::span<const float> plane : planes) {
      if (!std::isfinite(plane[i])) {
        throw Error(Errc::invalid_argument, "flows hold NaN or infinite values (first at pixel " + std::to_string(i) +
                                                "); check the network's output");
      }
    }
  }
}

std::vector<std::int64_t> foreground(std::span<const float> cellprob, float threshold) {
  // In parallel chunks, in raster order: count, then fill.
  const auto n = static_cast<std::int64_t>(cellprob.size());
  constexpr std::int64_t kChunk = std::int64_t{1} << 16;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::int64_t> start(static_cast<std::size_t>(chunks) + 1, 0);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    std::int64_t count = 0;
    for (std::int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) count += cellprob[i] > threshold;
    start[c + 1] = count;
  }
  for (std::int64_t c = 0; c < chunks; ++c) start[c + 1] += start[c];
  std::vector<std::int64_t> pixels(static_cast<std::size_t>(start[chunks]));
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    std::int64_t k = start[c];
    for (std::int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      if (cellprob[i] > threshold) pixels[k++] = i;
    }
  }
  return pixels;
}

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

void drop_and_compact(Labels& labels, const std::vector<bool>& drop, Stats& stats) {
  labels.count = drop_and_compact(labels.data, labels.count, drop, stats.sizes, stats.boxes);
}

Workspace::~Workspace() { release(); }

void Workspace::release() {
  if (mapped_) {
    munmap(data_, size_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

void* Workspace::get(std::size_t bytes) {
  if (bytes <= size_) return data_;
  release();
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  if (bytes >= kHuge) {
    // Whole 2 MiB pages: a fresh process faults in a few huge pages instead
    // of thousands of small ones (transparent huge pages in "madvise" mode).
    const std::size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      // Align to 2 MiB and give back the slack on both sides.
      const auto base = reinterpret_cast<std::uintptr_t>(p);
      const std::uintptr_t aligned = (base + kHuge - 1) / kHuge * kHuge;
      if (aligned > base) munmap(p, aligned - base);
      if (aligned + size < base + size + kHuge) munmap(reinterpret_cast<void*>(aligned + size), base + kHuge - aligned);
#ifdef MADV_HUGEPAGE
      madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
#endif
      data_ = reinterpret_cast<void*>(aligned);
      size_ = size;
      mapped_ = true;
      return data_;
    }
  }
  const std::size_t size = (bytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, size);
  if (!data_) throw std::bad_alloc();
  size_ = size;
  return data_;
}

}  // namespace detail
}  // namespace cpipc::dynamics
