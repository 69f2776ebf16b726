// Masks to unit flows (Cellpose 4's masks_to_flows): heat diffuses from each
// mask's centre inside the mask for 2 * max(h + w + 2) steps (one count for
// all masks, as Cellpose does), and the flow is the normalised gradient.
#include <cmath>

#include "cpipc/dynamics/dynamics.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

namespace detail {

// The centre of label `l` inside `box`: the rounded mean position (ties to
// even, as numpy), or the mask pixel nearest to it when that is outside the
// mask (first in raster order on ties). Relative to the box, as Cellpose.
static void mask_centre(const std::vector<std::uint32_t>& labels, int width, const Box& b, std::uint32_t l, int& cy,
                        int& cx) {
  double sy = 0, sx = 0, n = 0;
  for (int y = b.y0; y < b.y1; ++y) {
    for (int x = b.x0; x < b.x1; ++x) {
      if (labels[static_cast<std::size_t>(y) * width + x] == l) {
        sy += y - b.y0;
        sx += x - b.x0;
        n += 1;
      }
    }
  }
  const int my = static_cast<int>(std::nearbyint(sy / n));
  const int mx = static_cast<int>(std::nearbyint(sx / n));
  if (labels[static_cast<std::size_t>(b.y0 + my) * width + (b.x0 + mx)] == l) {
    cy = b.y0 + my;
    cx = b.x0 + mx;
    return;
  }
  long best = -1;
  for (int y = b.y0; y < b.y1; ++y) {
    for (int x = b.x0; x < b.x1; ++x) {
      if (labels[static_cast<std::size_t>(y) * width + x] != l) continue;
      const long dy = (y - b.y0) - my;
      const long dx = (x - b.x0) - mx;
      const long d = dx * dx + dy * dy;
      if (best < 0 || d < best) {
        best = d;
        cy = y;
        cx = x;
      }
    }
  }
}

// One Jacobi step in a mask's padded box: each mask pixel takes the sum of
// its 3 x 3 neighbours (rows first, then columns: the order both backends
// use) / 9; other pixels stay 0. Restrict pointers let the compiler
// vectorise both passes; a clone per instruction set picks the widest.
__attribute__((target_clones("avx2", "default"))) static void diffuse_step(const double* __restrict t,
                                                                           double* __restrict rows,
                                                                           double* __restrict next,
                                                                           const std::uint8_t* __restrict in, int bh,
                                                                           int bw) {
  for (int y = 0; y < bh; ++y) {
    const double* r = t + static_cast<std::size_t>(y) * bw;
    double* o = rows + static_cast<std::size_t>(y) * bw;
    o[0] = r[0] + (bw > 1 ? r[1] : 0.0);
    for (int x = 1; x + 1 < bw; ++x) o[x] = r[x - 1] + r[x] + r[x + 1];
    if (bw > 1) o[bw - 1] = r[bw - 2] + r[bw - 1];
  }
  for (int y = 1; y + 1 < bh; ++y) {
    const double* up = rows + static_cast<std::size_t>(y - 1) * bw;
    const double* mid = rows + static_cast<std::size_t>(y) * bw;
    const double* dn = rows + static_cast<std::size_t>(y + 1) * bw;
    const std::uint8_t* m = in + static_cast<std::size_t>(y) * bw;
    double* o = next + static_cast<std::size_t>(y) * bw;
    for (int x = 0; x < bw; ++x) o[x] = m[x] ? (up[x] + mid[x] + dn[x]) / 9.0 : 0.0;
  }
}

DoubleFlows unit_flows(const Labels& labels) {
  const int h = labels.height;
  const int w = labels.width;
  const std::size_t npix = static_cast<std::size_t>(h) * w;
  DoubleFlows out;
  out.dy.assign(npix, 0.0);
  out.dx.assign(npix, 0.0);
  if (labels.count == 0) return out;

  const std::vector<Box> boxes = bounding_boxes(labels.data, h, w, labels.count);
  int niter = 0;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    const Box& b = boxes[l];
    if (b.y1 > b.y0) niter = std::max(niter, 2 * ((b.y1 - b.y0) + (b.x1 - b.x0) + 2));
  }

  // Heat per pixel. Masks are independent (diffusion stays within a mask),
  // so each runs on its own bounding box, padded by one, in parallel; each
  // writes only its own pixels of T.
  std::vector<double> temp(npix, 0.0);
#pragma omp parallel for schedule(dynamic, 4)
  for (std::int64_t li = 1; li <= static_cast<std::int64_t>(labels.count); ++li) {
    const auto l = static_cast<std::uint32_t>(li);
    const Box& b = boxes[l];
    if (b.y1 <= b.y0) continue;
    int cy = 0, cx = 0;
    mask_centre(labels.data, w, b, l, cy, cx);
    const int bh = b.y1 - b.y0 + 2;
    const int bw = b.x1 - b.x0 + 2;
    std::vector<std::uint8_t> in(static_cast<std::size_t>(bh) * bw, 0);
    for (int y = b.y0; y < b.y1; ++y) {
      for (int x = b.x0; x < b.x1; ++x) {
        in[static_cast<std::size_t>(y - b.y0 + 1) * bw + (x - b.x0 + 1)] =
            labels.data[static_cast<std::size_t>(y) * w + x] == l;
      }
    }
    // T outside the mask stays 0, so the 3 x 3 sum over all neighbours is the
    // sum over same-mask neighbours; Cellpose divides by 9 either way.
    std::vector<double> t(in.size(), 0.0), rows(in.size(), 0.0), next(in.size(), 0.0);
    const std::size_t centre = static_cast<std::size_t>(cy - b.y0 + 1) * bw + (cx - b.x0 + 1);
    for (int it = 0; it < niter; ++it) {
      t[centre] += 1.0;
      diffuse_step(t.data(), rows.data(), next.data(), in.data(), bh, bw);
      t.swap(next);
    }
    for (int y = b.y0; y < b.y1; ++y) {
      for (int x = b.x0; x < b.x1; ++x) {
        const std::size_t local = static_cast<std::size_t>(y - b.y0 + 1) * bw + (x - b.x0 + 1);
        if (in[local]) temp[static_cast<std::size_t>(y) * w + x] = t[local];
      }
    }
  }

  // Central differences of T (neighbours in other masks count, outside the
  // image is 0), normalised to unit length.
#pragma omp parallel for schedule(static)
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const std::size_t i = static_cast<std::size_t>(y) * w + x;
      if (labels.data[i] == 0) continue;
      const double up = y > 0 ? temp[i - w] : 0.0;
      const double down = y + 1 < h ? temp[i + w] : 0.0;
      const double left = x > 0 ? temp[i - 1] : 0.0;
      const double right = x + 1 < w ? temp[i + 1] : 0.0;
      const double dy = down - up;
      const double dx = right - left;
      const double norm = 1e-60 + std::sqrt(dy * dy + dx * dx);
      out.dy[i] = dy / norm;
      out.dx[i] = dx / norm;
    }
  }
  return out;
}

}  // namespace detail

UnitFlows flows_from_masks(const Labels& labels) {
  const detail::DoubleFlows d = detail::unit_flows(labels);
  UnitFlows out;
  out.height = labels.height;
  out.width = labels.width;
  out.dy.assign(d.dy.begin(), d.dy.end());
  out.dx.assign(d.dx.begin(), d.dx.end());
  return out;
}

}  // namespace cpipc::dynamics
