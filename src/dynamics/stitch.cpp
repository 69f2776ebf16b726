// 2-D label planes stitched into 3-D objects by IoU (Cellpose's utils.stitch3D).
#include "cpipc/dynamics/stitch.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <vector>

#include "cpipc/error.hpp"
#include "volume_detail.hpp"

namespace cpipc::dynamics {

namespace {

// The double a Python float written as `t`'s shortest decimal form holds
// (0.1f -> 0.1, not 0.100000001490116): what Cellpose compares IoUs with.
double as_python_float(float t) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, t).ptr;
  double d = t;
  std::from_chars(buf, end, d);
  return d;
}

constexpr std::uint64_t kMaxId = std::numeric_limits<std::uint32_t>::max();

void check_ids(std::uint64_t largest) {
  if (largest > kMaxId) {
    throw Error(Errc::invalid_argument, "stitch_planes: the stitched ids would pass 2^32 - 1 (" +
                                            std::to_string(largest) + "); number each plane's labels from 1");
  }
}

// The new ids of plane `next` against the stitched plane `prev` (both
// non-empty), Cellpose's IoU rule; `mmax` is the largest id so far, and
// grows by the labels left unmatched.
void stitch_pair(std::span<std::uint32_t> next, std::span<const std::uint32_t> prev, double threshold,
                 std::uint64_t& mmax) {
  const detail::ValueIndex n = detail::index_values(next);
  const detail::ValueIndex p = detail::index_values(prev);
  const std::size_t nn = n.values.size();
  const std::size_t np = p.values.size();
  std::vector<std::int64_t> area_n(nn, 0);
  std::vector<std::int64_t> area_p(np, 0);
  std::vector<std::uint64_t> pairs;  // (row << 32 | column) per pixel in both
  for (std::size_t i = 0; i < next.size(); ++i) {
    if (n.index[i]) ++area_n[n.index[i] - 1];
    if (p.index[i]) ++area_p[p.index[i] - 1];
    if (n.index[i] && p.index[i]) pairs.push_back(std::uint64_t{n.index[i] - 1} << 32 | (p.index[i] - 1));
  }
  std::sort(pairs.begin(), pairs.end());
  struct Overlap {
    std::uint32_t row, col;
    double iou;
  };
  std::vector<Overlap> overlaps;  // by row, then column (label values ascending)
  for (std::size_t i = 0; i < pairs.size();) {
    std::size_t j = i;
    while (j < pairs.size() && pairs[j] == pairs[i]) ++j;
    const auto row = static_cast<std::uint32_t>(pairs[i] >> 32);
    const auto col = static_cast<std::uint32_t>(pairs[i]);
    const auto o = static_cast<std::int64_t>(j - i);
    const double iou = static_cast<double>(o) / static_cast<double>(area_n[row] + area_p[col] - o);
    overlaps.push_back({row, col, iou < threshold ? 0.0 : iou});
    i = j;
  }
  // Only the largest IoU of each column (of each previous id) stays.
  std::vector<double> col_max(np, 0.0);
  for (const Overlap& o : overlaps) col_max[o.col] = std::max(col_max[o.col], o.iou);
  std::vector<std::uint32_t> best_col(nn, 0);
  std::vector<double> best(nn, 0.0);
  for (const Overlap& o : overlaps) {
    if (o.iou < col_max[o.col]) continue;
    if (o.iou > best[o.row]) {  // strict: the smallest column wins a tie, as argmax
      best[o.row] = o.iou;
      best_col[o.row] = o.col;
    }
  }
  // Unmatched labels take new ids in label order, counting the values
  // 1..max absent from this plane too (Cellpose's IoU matrix has their rows).
  std::vector<std::uint32_t> id(nn, 0);
  std::uint64_t matched_below = 0;
  for (std::size_t r = 0; r < nn; ++r) {
    if (best[r] > 0) {
      id[r] = p.values[best_col[r]];
      ++matched_below;
    } else {
      const std::uint64_t fresh = mmax + n.values[r] - matched_below;
      check_ids(fresh);
      id[r] = static_cast<std::uint32_t>(fresh);
    }
  }
  mmax += n.values.back() - matched_below;
  for (std::size_t i = 0; i < next.size(); ++i) {
    if (n.index[i]) next[i] = id[n.index[i] - 1];
  }
}

}  // namespace

std::uint32_t stitch_planes(std::span<std::uint32_t> labels, int depth, int height, int width, float stitch_threshold) {
  detail::check_volume(labels, depth, height, width, "stitch_planes");
  if (labels.empty()) return 0;
  const std::size_t plane = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  const double threshold = as_python_float(stitch_threshold);
  const auto plane_max = [&](int z) {
    const auto s = labels.subspan(static_cast<std::size_t>(z) * plane, plane);
    return std::uint64_t{*std::max_element(s.begin(), s.end())};
  };
  std::uint64_t mmax = plane_max(0);
  bool stitched = false;  // Cellpose's `empty`: a pair of non-empty planes has met
  for (int z = 1; z < depth; ++z) {
    const std::span<std::uint32_t> next = labels.subspan(static_cast<std::size_t>(z) * plane, plane);
    const std::span<const std::uint32_t> prev = labels.subspan(static_cast<std::size_t>(z - 1) * plane, plane);
    const std::uint64_t next_max = plane_max(z);
    if (next_max == 0 || plane_max(z - 1) == 0) {
      if (!stitched) {
        mmax = next_max;  // labels kept as they are
      } else if (next_max > 0) {
        check_ids(mmax + next_max);
        for (std::uint32_t& v : next) {
          if (v) v = static_cast<std::uint32_t>(mmax + v);
        }
        mmax += next_max;
      }
      continue;
    }
    stitch_pair(next, prev, threshold, mmax);
    stitched = true;
  }
  return detail::count_objects(labels);
}

}  // namespace cpipc::dynamics
