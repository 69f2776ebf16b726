// Flows to masks in 3-D, in Cellpose's order (compute_masks with do_3D=True,
// then fill_holes_and_remove_small_masks): flow following, a histogram of
// final positions, seeds at its 5 x 5 x 5 maxima grown in 11 x 11 x 11
// patches, every voxel labelled by the seed region it converged into, large
// masks removed, small ones removed, holes filled in 3-D. Cellpose skips the
// flow-error QC in 3-D, and so does this.
//
// Cellpose 3.1.1.2 computes the same 3-D masks: its interpolated flow
// following, get_masks_torch (per-seed loops instead of one scatter, same
// result) and fill_voids are the same; only its small-mask filter indexes
// the counts as if every label from 0 up were present, which after
// get_masks' renumbering they are.
#include <algorithm>
#include <string>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

namespace {

constexpr int kPad = detail::kHistPad;  // histogram padding, voxels
constexpr int kPeakRadius = 2;          // seeds: maxima over 5 x 5 x 5
constexpr int kMinSeedCount = 10;       // seeds: more than this many voxels converged
constexpr int kPatch = 11;              // seed growth patch, 11 x 11 x 11 around the seed
constexpr int kPatchVolume = kPatch * kPatch * kPatch;
constexpr int kGrowSteps = 5;     // 3 x 3 x 3 dilations
constexpr int kMinGrowCount = 2;  // grow only over bins with more than this

// Per-label voxel counts and boxes (index 0 unused).
struct Stats3D {
  std::vector<std::int64_t> sizes;
  std::vector<detail::Box3> boxes;
};

void check(const Flows3D& f, const Params& p) {
  if (f.depth < 0 || f.height < 0 || f.width < 0) throw Error(Errc::invalid_argument, "negative stack size");
  const std::size_t n =
      static_cast<std::size_t>(f.depth) * static_cast<std::size_t>(f.height) * static_cast<std::size_t>(f.width);
  if (f.dz.size() != n || f.dy.size() != n || f.dx.size() != n || f.cellprob.size() != n) {
    throw Error(Errc::invalid_argument, "flows and cellprob must all be " + std::to_string(f.depth) + " x " +
                                            std::to_string(f.height) + " x " + std::to_string(f.width) + " (got " +
                                            std::to_string(f.dz.size()) + ", " + std::to_string(f.dy.size()) + ", " +
                                            std::to_string(f.dx.size()) + " and " + std::to_string(f.cellprob.size()) +
                                            " values)");
  }
  detail::check_params(p);
  detail::check_finite({f.dz, f.dy, f.dx, f.cellprob});
}

// One 3-tap max along an axis of the patch (truncated at its ends), as
// Cellpose's separable max_pool with kernel 3.
void dilate_axis(const std::uint8_t* in, std::uint8_t* out, int step) {
  for (int i = 0; i < kPatchVolume; ++i) {
    const int pos = i / step % kPatch;
    out[i] = in[i] | (pos > 0 ? in[i - step] : 0) | (pos + 1 < kPatch ? in[i + step] : 0);
  }
}

// Grows one seed inside its patch of the histogram: five 3 x 3 x 3
// dilations, each limited to bins with more than two voxels.
void grow_seed(const std::int32_t* patch, std::uint8_t* region) {
  std::uint8_t a[kPatchVolume];
  std::fill(region, region + kPatchVolume, 0);
  region[kPatchVolume / 2] = 1;
  for (int step = 0; step < kGrowSteps; ++step) {
    dilate_axis(region, a, kPatch * kPatch);
    dilate_axis(a, region, kPatch);
    dilate_axis(region, a, 1);
    for (int i = 0; i < kPatchVolume; ++i) region[i] = a[i] && patch[i] > kMinGrowCount;
  }
}

// Cellpose's get_masks in 3-D, from the final positions' bins: labels in
// order of first appearance, large masks removed, with their sizes and boxes.
// `hist` is scratch of the padded histogram's size (any contents).
Labels3D masks_from_bins(std::span<const std::int64_t> bin, std::span<const std::int64_t> pixels, int depth, int height,
                         int width, float max_size_fraction, std::int32_t* hist, Stats3D& stats) {
  Labels3D out;
  out.depth = depth;
  out.height = height;
  out.width = width;
  out.data.assign(static_cast<std::size_t>(depth) * height * width, 0);
  stats.sizes.assign(1, 0);
  stats.boxes.assign(1, detail::Box3{0, 0, 0, 0, 0, 0});
  const std::int64_t dp = depth + 2 * kPad, hp = height + 2 * kPad, wp = width + 2 * kPad;
  const std::size_t n = pixels.size();

  // Seeds: bins with more than 10 voxels that no bin of their 5 x 5 x 5
  // window (truncated at the edges) beats, in raster order. Only bins that
  // voxels fell into can have a count, so they are the candidates.
  std::vector<std::int64_t> seeds =
      detail::count_bins(bin, hist, static_cast<std::size_t>(dp * hp * wp), kMinSeedCount);
  std::erase_if(seeds, [&](std::int64_t s) {
    const std::int64_t cz = s / (hp * wp), cy = s / wp % hp, cx = s % wp;
    const std::int32_t c = hist[s];
    for (std::int64_t z = std::max<std::int64_t>(0, cz - kPeakRadius); z <= std::min(dp - 1, cz + kPeakRadius); ++z) {
      for (std::int64_t y = std::max<std::int64_t>(0, cy - kPeakRadius); y <= std::min(hp - 1, cy + kPeakRadius); ++y) {
        for (std::int64_t x = std::max<std::int64_t>(0, cx - kPeakRadius); x <= std::min(wp - 1, cx + kPeakRadius);
             ++x) {
          if (hist[(z * hp + y) * wp + x] > c) return true;
        }
      }
    }
    return false;
  });
  if (seeds.empty()) return out;
  std::sort(seeds.begin(), seeds.end());
  detail::sort_seeds_by_count(seeds, hist);

  // Grow every seed in its patch (independent), then paint them in order, a
  // later (larger) seed winning where regions overlap, as Cellpose's
  // scatter_reduce amax. Seeds sit at least kPad bins inside: patches fit.
  const std::size_t ns = seeds.size();
  const auto corner = [&](std::size_t s) { return seeds[s] - ((kPatch / 2) * hp + kPatch / 2) * wp - kPatch / 2; };
  const auto offset = [&](int i) {
    return (static_cast<std::int64_t>(i / (kPatch * kPatch)) * hp + i / kPatch % kPatch) * wp + i % kPatch;
  };
  std::vector<std::uint8_t> regions(ns * kPatchVolume);
#pragma omp parallel for schedule(static)
  for (std::int64_t s = 0; s < static_cast<std::int64_t>(ns); ++s) {
    const std::int64_t c0 = corner(static_cast<std::size_t>(s));
    std::int32_t patch[kPatchVolume];
    for (int i = 0; i < kPatchVolume; ++i) patch[i] = hist[c0 + offset(i)];
    grow_seed(patch, &regions[static_cast<std::size_t>(s) * kPatchVolume]);
  }
  // The histogram is not needed any more: label s + 1 goes into it as -(s + 1).
  for (std::size_t s = 0; s < ns; ++s) {
    const std::int64_t c0 = corner(s);
    for (int i = 0; i < kPatchVolume; ++i) {
      if (regions[s * kPatchVolume + i]) hist[c0 + offset(i)] = -static_cast<std::int32_t>(s + 1);
    }
  }

  // Each voxel takes the label painted where it converged; masks over
  // max_size_fraction of the stack go; the rest are numbered in order of
  // first appearance (the voxels are listed in raster order).
  std::vector<std::uint32_t> label(n);
  std::vector<std::int64_t> sizes(ns + 1, 0);
  for (std::size_t k = 0; k < n; ++k) {
    const std::int32_t v = hist[bin[k]];
    label[k] = v < 0 ? static_cast<std::uint32_t>(-v) : 0u;
    ++sizes[label[k]];
  }
  const double big = static_cast<double>(depth) * height * width * max_size_fraction;
  std::vector<std::uint32_t> map(ns + 1, 0);
  constexpr std::uint32_t kDropped = 0xffffffffu;
  for (std::size_t l = 1; l <= ns; ++l) {
    if (static_cast<double>(sizes[l]) > big) map[l] = kDropped;
  }
  std::uint32_t next = 0;
  const std::int64_t plane = static_cast<std::int64_t>(height) * width;
  for (std::size_t k = 0; k < n; ++k) {
    std::uint32_t& m = map[label[k]];
    if (label[k] == 0 || m == kDropped) continue;
    if (m == 0) {
      m = ++next;
      stats.sizes.push_back(0);
      stats.boxes.push_back(detail::Box3{depth, 0, height, 0, width, 0});
    }
    const std::int64_t p = pixels[k];
    out.data[static_cast<std::size_t>(p)] = m;
    const int z = static_cast<int>(p / plane), y = static_cast<int>(p % plane / width), x = static_cast<int>(p % width);
    ++stats.sizes[m];
    detail::Box3& b = stats.boxes[m];
    b = {std::min(b.z0, z),     std::max(b.z1, z + 1), std::min(b.y0, y),
         std::max(b.y1, y + 1), std::min(b.x0, x),     std::max(b.x1, x + 1)};
  }
  out.count = next;
  return out;
}

void drop_and_compact(Labels3D& labels, const std::vector<bool>& drop, Stats3D& stats) {
  labels.count = detail::drop_and_compact(labels.data, labels.count, drop, stats.sizes, stats.boxes);
}

std::vector<bool> smaller_than(const Stats3D& stats, std::uint32_t count, int min_size) {
  std::vector<bool> drop(static_cast<std::size_t>(count) + 1, false);
  for (std::uint32_t l = 1; l <= count && min_size > 0; ++l) drop[l] = stats.sizes[l] < min_size;
  return drop;
}

// Cellpose's fill_holes_and_remove_small_masks on a stack: small masks out,
// every mask's holes filled in 3-D (boxes as before any filling, as
// find_objects), small masks out again, renumbered.
void fill_holes_and_remove_small_masks(Labels3D& labels, int min_size, Stats3D& stats) {
  if (min_size > 0) drop_and_compact(labels, smaller_than(stats, labels.count, min_size), stats);
  std::vector<std::uint8_t> reach;
  std::vector<std::int64_t> stack;
  bool claimed = false;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    if (stats.boxes[l].z1 > stats.boxes[l].z0) {
      detail::fill_holes(labels.data.data(), labels.height, labels.width, stats.boxes[l], l, true, reach, stack,
                         &stats.sizes, &claimed);
    }
  }
  const std::vector<bool> drop = smaller_than(stats, labels.count, min_size);
  if (!claimed) {
    // Filling background keeps the order of first appearance (a hole has a
    // voxel of its mask before it in raster order).
    drop_and_compact(labels, drop, stats);
    return;
  }
  // Taking another label's voxels may change the order: number afresh.
  Labels flat;
  flat.data = std::move(labels.data);
  detail::drop_labels(flat.data, drop);
  renumber(flat);
  labels.data = std::move(flat.data);
  labels.count = flat.count;
}

}  // namespace

Labels3D masks_from_flows_3d(const Flows3D& flows, const Params& params) {
  check(flows, params);
  const int d = flows.depth, h = flows.height, w = flows.width;
  const std::size_t n = static_cast<std::size_t>(d) * h * w;
  const std::vector<std::int64_t> pixels = detail::foreground(flows.cellprob, params.cellprob_threshold);
  if (pixels.empty()) {
    Labels3D labels;
    labels.depth = d;
    labels.height = h;
    labels.width = w;
    labels.data.assign(n, 0);
    return labels;
  }
  // One scratch area for the field, then the histogram.
  const std::size_t field = sizeof(float) * 4 * (static_cast<std::size_t>(d) + 2) * (h + 2) * (w + 2);
  const std::size_t hist =
      sizeof(std::int32_t) * (static_cast<std::size_t>(d) + 2 * kPad) * (h + 2 * kPad) * (w + 2 * kPad);
  detail::Workspace ws;
  void* scratch = ws.get(std::max(field, hist));

  std::vector<std::int64_t> bins(pixels.size());
  detail::follow_flows_3d(flows, pixels, params.cellprob_threshold, params.niter, static_cast<float*>(scratch),
                          bins.data());
  Stats3D stats;
  Labels3D labels =
      masks_from_bins(bins, pixels, d, h, w, params.max_size_fraction, static_cast<std::int32_t*>(scratch), stats);
  fill_holes_and_remove_small_masks(labels, params.min_size, stats);
  return labels;
}

}  // namespace cpipc::dynamics
