// Masks from where the pixels ended up (Cellpose's get_masks): a histogram
// of final positions, seeds at its local maxima, seeds grown over dense
// bins, and every pixel labelled by the seed region it converged into.
#include <algorithm>

#include "cpipc/dynamics/dynamics.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

namespace {

constexpr int kPad = detail::kHistPad;  // histogram padding, pixels
constexpr int kPeakWindow = 5;          // seeds: maxima over 5 x 5
constexpr int kMinSeedCount = 10;       // seeds: more than this many pixels converged
constexpr int kPatch = 11;              // seed growth patch, 11 x 11 around the seed
constexpr int kGrowSteps = 5;           // 3 x 3 dilations
constexpr int kMinGrowCount = 2;        // grow only over bins with more than this

// Grows one seed inside its 11 x 11 patch of the histogram: five 3 x 3
// dilations, each limited to bins with more than two pixels.
void grow_seed(const std::int32_t* patch, bool* region) {
  bool next[kPatch * kPatch];
  std::fill(region, region + kPatch * kPatch, false);
  region[(kPatch / 2) * kPatch + kPatch / 2] = true;
  for (int step = 0; step < kGrowSteps; ++step) {
    for (int y = 0; y < kPatch; ++y) {
      for (int x = 0; x < kPatch; ++x) {
        bool any = false;
        for (int dy = std::max(0, y - 1); dy <= std::min(kPatch - 1, y + 1) && !any; ++dy) {
          for (int dx = std::max(0, x - 1); dx <= std::min(kPatch - 1, x + 1) && !any; ++dx) {
            any = region[dy * kPatch + dx];
          }
        }
        next[y * kPatch + x] = any && patch[y * kPatch + x] > kMinGrowCount;
      }
    }
    std::copy(next, next + kPatch * kPatch, region);
  }
}

}  // namespace

namespace detail {

Labels masks_from_bins(std::span<const std::int32_t> bin, std::span<const std::int64_t> pixels, int height, int width,
                       float max_size_fraction, std::int32_t* hist, Stats& stats) {
  Labels out;
  out.height = height;
  out.width = width;
  out.data.assign(static_cast<std::size_t>(height) * width, 0);
  stats.sizes.assign(1, 0);
  stats.boxes.assign(1, Box{0, 0, 0, 0});
  const int hp = height + 2 * kPad;
  const int wp = width + 2 * kPad;
  const std::size_t n = pixels.size();

  // Seeds: local maxima (over 5 x 5, truncated at the edges, as Cellpose's
  // max_pool) with enough pixels, in raster order. Only bins that pixels
  // fell into can have a count, so they are the candidates.
  std::vector<std::int32_t> seeds = count_bins(bin, hist, static_cast<std::size_t>(hp) * wp, kMinSeedCount);
  const int r = kPeakWindow / 2;
  std::erase_if(seeds, [&](std::int32_t s) {
    const int cy = s / wp, cx = s % wp;
    const std::int32_t c = hist[s];
    for (int y = std::max(0, cy - r); y <= std::min(hp - 1, cy + r); ++y) {
      for (int x = std::max(0, cx - r); x <= std::min(wp - 1, cx + r); ++x) {
        if (hist[static_cast<std::size_t>(y) * wp + x] > c) return true;
      }
    }
    return false;
  });
  std::sort(seeds.begin(), seeds.end());
  if (seeds.empty()) return out;
  detail::sort_seeds_by_count(seeds, hist);

  // Grow every seed in its patch (independent), then paint them in order.
  const std::size_t ns = seeds.size();
  std::vector<std::uint8_t> regions(ns * kPatch * kPatch);
#pragma omp parallel for schedule(static)
  for (std::int64_t s = 0; s < static_cast<std::int64_t>(ns); ++s) {
    const int cy = seeds[static_cast<std::size_t>(s)] / wp;
    const int cx = seeds[static_cast<std::size_t>(s)] % wp;
    std::int32_t patch[kPatch * kPatch];
    for (int y = 0; y < kPatch; ++y) {
      for (int x = 0; x < kPatch; ++x) {
        // Seeds sit at least kPad - 1 bins inside the histogram: the patch fits.
        patch[y * kPatch + x] = hist[static_cast<std::size_t>(cy + y - kPatch / 2) * wp + (cx + x - kPatch / 2)];
      }
    }
    bool region[kPatch * kPatch];
    grow_seed(patch, region);
    for (int i = 0; i < kPatch * kPatch; ++i) regions[static_cast<std::size_t>(s) * kPatch * kPatch + i] = region[i];
  }
  // The histogram is not needed any more: paint label s + 1 into it as
  // -(s + 1), so that a bin reads as a label when negative.
  for (std::size_t s = 0; s < ns; ++s) {
    const int cy = seeds[s] / wp;
    const int cx = seeds[s] % wp;
    for (int y = 0; y < kPatch; ++y) {
      for (int x = 0; x < kPatch; ++x) {
        if (regions[s * kPatch * kPatch + y * kPatch + x]) {
          hist[static_cast<std::size_t>(cy + y - kPatch / 2) * wp + (cx + x - kPatch / 2)] =
              -static_cast<std::int32_t>(s + 1);
        }
      }
    }
  }

  // Each pixel takes the label painted where it converged. Masks larger than
  // max_size_fraction of the image go, and the rest are numbered in order of
  // first appearance: the pixels are listed in raster order, so all of this
  // works on the list, not the image.
  std::vector<std::uint32_t> label(n);
  std::vector<std::int64_t> sizes(ns + 1, 0);
  for (std::size_t k = 0; k < n; ++k) {
    const std::int32_t v = hist[bin[k]];
    label[k] = v < 0 ? static_cast<std::uint32_t>(-v) : 0u;
    ++sizes[label[k]];
  }
  const double big = static_cast<double>(height) * width * max_size_fraction;
  std::vector<std::uint32_t> map(ns + 1, 0);
  constexpr std::uint32_t kDropped = 0xffffffffu;
  for (std::size_t l = 1; l <= ns; ++l) {
    if (static_cast<double>(sizes[l]) > big) map[l] = kDropped;
  }
  std::uint32_t next = 0;
  int y = 0;
  std::int64_t row_end = width;
  for (std::size_t k = 0; k < n; ++k) {
    std::uint32_t& m = map[label[k]];
    if (label[k] == 0 || m == kDropped) continue;
    if (m == 0) {
      m = ++next;
      stats.sizes.push_back(0);
      stats.boxes.push_back(Box{height, 0, width, 0});
    }
    const std::int64_t p = pixels[k];
    out.data[static_cast<std::size_t>(p)] = m;
    while (p >= row_end) {
      ++y;
      row_end += width;
    }
    const int x = static_cast<int>(p - (row_end - width));
    ++stats.sizes[m];
    Box& b = stats.boxes[m];
    b.y0 = std::min(b.y0, y);
    b.y1 = std::max(b.y1, y + 1);
    b.x0 = std::min(b.x0, x);
    b.x1 = std::max(b.x1, x + 1);
  }
  out.count = next;
  return out;
}

}  // namespace detail

Labels masks_from_positions(const Positions& pos, std::span<const std::int64_t> pixels, int height, int width,
                            float max_size_fraction) {
  const int wp = width + 2 * kPad;
  std::vector<std::int32_t> bin(pixels.size());
  for (std::size_t k = 0; k < pixels.size(); ++k) {
    const int y = std::clamp(pos.y[k] + kPad, 0, height + kPad - 1);
    const int x = std::clamp(pos.x[k] + kPad, 0, width + kPad - 1);
    bin[k] = y * wp + x;
  }
  std::vector<std::int32_t> hist(static_cast<std::size_t>(height + 2 * kPad) * wp);
  detail::Stats stats;
  return detail::masks_from_bins(bin, pixels, height, width, max_size_fraction, hist.data(), stats);
}

}  // namespace cpipc::dynamics
