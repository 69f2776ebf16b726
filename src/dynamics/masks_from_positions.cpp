// Masks from where the pixels ended up (Cellpose's get_masks): a histogram
// of final positions, seeds at its local maxima, seeds grown over dense
// bins, and every pixel labelled by the seed region it converged into.
#include <algorithm>

#include "cpipc/dynamics/dynamics.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

namespace {

constexpr int kPad = 20;           // histogram padding, pixels
constexpr int kPeakWindow = 5;     // seeds: maxima over 5 x 5
constexpr int kMinSeedCount = 10;  // seeds: more than this many pixels converged
constexpr int kPatch = 11;         // seed growth patch, 11 x 11 around the seed
constexpr int kGrowSteps = 5;      // 3 x 3 dilations
constexpr int kMinGrowCount = 2;   // grow only over bins with more than this

// Max over a window of `size` along rows, then columns, truncated at edges
// (Cellpose's max_pool_nd with stride 1).
std::vector<std::int32_t> max_filter(const std::vector<std::int32_t>& h, int height, int width, int size) {
  const int r = size / 2;
  std::vector<std::int32_t> rows(h.size());
  std::vector<std::int32_t> out(h.size());
#pragma omp parallel for schedule(static)
  for (int y = 0; y < height; ++y) {
    const std::int32_t* in = &h[static_cast<std::size_t>(y) * width];
    std::int32_t* o = &rows[static_cast<std::size_t>(y) * width];
    for (int x = 0; x < width; ++x) {
      std::int32_t m = in[x];
      for (int d = std::max(0, x - r); d <= std::min(width - 1, x + r); ++d) m = std::max(m, in[d]);
      o[x] = m;
    }
  }
#pragma omp parallel for schedule(static)
  for (int y = 0; y < height; ++y) {
    std::int32_t* o = &out[static_cast<std::size_t>(y) * width];
    for (int x = 0; x < width; ++x) o[x] = rows[static_cast<std::size_t>(y) * width + x];
    for (int d = std::max(0, y - r); d <= std::min(height - 1, y + r); ++d) {
      const std::int32_t* in = &rows[static_cast<std::size_t>(d) * width];
      for (int x = 0; x < width; ++x) o[x] = std::max(o[x], in[x]);
    }
  }
  return out;
}

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

Labels masks_from_positions(const Positions& pos, std::span<const std::int64_t> pixels, int height, int width,
                            float max_size_fraction) {
  Labels out;
  out.height = height;
  out.width = width;
  out.data.assign(static_cast<std::size_t>(height) * width, 0);
  const int hp = height + 2 * kPad;
  const int wp = width + 2 * kPad;
  const std::size_t n = pixels.size();

  // Histogram of final positions, padded.
  std::vector<std::int32_t> bin(n);
  std::vector<std::int32_t> hist(static_cast<std::size_t>(hp) * wp, 0);
  for (std::size_t k = 0; k < n; ++k) {
    const int y = std::clamp(pos.y[k] + kPad, 0, height + kPad - 1);
    const int x = std::clamp(pos.x[k] + kPad, 0, width + kPad - 1);
    bin[k] = y * wp + x;
    ++hist[static_cast<std::size_t>(bin[k])];
  }

  // Seeds: local maxima with enough pixels, weakest first (a stronger seed's
  // region overwrites a weaker one's where they overlap).
  const std::vector<std::int32_t> peak = max_filter(hist, hp, wp, kPeakWindow);
  std::vector<std::int32_t> seeds;
  for (std::int32_t i = 0; i < hp * wp; ++i) {
    if (hist[static_cast<std::size_t>(i)] > kMinSeedCount &&
        hist[static_cast<std::size_t>(i)] == peak[static_cast<std::size_t>(i)]) {
      seeds.push_back(i);
    }
  }
  if (seeds.empty()) return out;
  // Cellpose orders seeds with torch's argsort, which is not stable: torch's
  // CPU sort is libstdc++'s std::sort over (value, index) pairs compared by
  // value alone. Doing the same gives the same order among equal counts, and
  // so the same winner where seed regions overlap.
  {
    struct Keyed {
      std::int32_t count;
      std::int32_t seed;
    };
    std::vector<Keyed> keyed(seeds.size());
    for (std::size_t i = 0; i < seeds.size(); ++i) keyed[i] = {hist[static_cast<std::size_t>(seeds[i])], seeds[i]};
    std::sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) { return a.count < b.count; });
    for (std::size_t i = 0; i < seeds.size(); ++i) seeds[i] = keyed[i].seed;
  }

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
  std::vector<std::uint32_t> painted(static_cast<std::size_t>(hp) * wp, 0);
  for (std::size_t s = 0; s < ns; ++s) {
    const int cy = seeds[s] / wp;
    const int cx = seeds[s] % wp;
    for (int y = 0; y < kPatch; ++y) {
      for (int x = 0; x < kPatch; ++x) {
        if (regions[s * kPatch * kPatch + y * kPatch + x]) {
          painted[static_cast<std::size_t>(cy + y - kPatch / 2) * wp + (cx + x - kPatch / 2)] =
              static_cast<std::uint32_t>(s + 1);
        }
      }
    }
  }

  // Each pixel takes the label painted where it converged.
  for (std::size_t k = 0; k < n; ++k)
    out.data[static_cast<std::size_t>(pixels[k])] = painted[static_cast<std::size_t>(bin[k])];

  // Remove masks larger than max_size_fraction of the image, then renumber.
  const std::vector<std::int64_t> sizes = detail::label_sizes(out.data, static_cast<std::uint32_t>(ns));
  const double big = static_cast<double>(height) * width * max_size_fraction;
  std::vector<bool> drop(ns + 1, false);
  bool any = false;
  for (std::size_t l = 1; l <= ns; ++l) {
    if (static_cast<double>(sizes[l]) > big) drop[l] = any = true;
  }
  if (any) detail::drop_labels(out.data, drop);
  renumber(out);
  return out;
}

}  // namespace cpipc::dynamics
