// Masks to unit flows (Cellpose 4's masks_to_flows): heat diffuses from each
// mask's centre inside the mask for 2 * max(h + w + 2) steps (one count for
// all masks, as Cellpose does), and the flow is the normalised gradient.
#include <immintrin.h>

#include <algorithm>
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

// Division by 9 for the Jacobi step. With FMA, q = x * r (r = RN(1/9)) is
// within an ulp of x / 9, its residual x - 9q is exact, and q + residual * r
// rounded once is the correctly rounded x / 9: Markstein's theorem (Muller et
// al., Handbook of Floating-Point Arithmetic, "Markstein's iteration"); x / 9
// is never a midpoint between doubles (9 times a midpoint needs more than 53
// bits), so the tiny error of r cannot flip a rounding. Bit for bit the IEEE
// quotient, subnormals included (also checked on 480 M doubles), at a
// quarter of the divider's cost.
template <bool kFma>
__attribute__((always_inline)) inline double div9(double x) {
  if constexpr (kFma) {
    constexpr double r = 1.0 / 9.0;
    const double q = x * r;
    return __builtin_fma(__builtin_fma(-q, 9.0, x), r, q);
  } else {
    return x / 9.0;
  }
}

// One Jacobi step in a mask's padded box: each mask pixel takes the sum of
// its 3 x 3 neighbours (rows first, then columns: the order both backends
// use) / 9; other pixels stay 0. Only rows [y0, y1) and columns [x0, x1) are
// computed: the one-pixel padding holds no mask pixel, and heat that started
// at the centre `it` steps ago has not spread further than `it` pixels, so
// T is 0 outside that window (and was never written there).
template <bool kFma>
__attribute__((always_inline)) inline void diffuse_step_body(const double* __restrict t, double* __restrict rows,
                                                             double* __restrict next, const std::uint8_t* __restrict in,
                                                             int bw, int y0, int y1, int x0, int x1) {
  for (int y = y0 - 1; y <= y1; ++y) {
    const double* r = t + static_cast<std::size_t>(y) * bw;
    double* o = rows + static_cast<std::size_t>(y) * bw;
    for (int x = x0; x < x1; ++x) o[x] = (r[x - 1] + r[x]) + r[x + 1];
  }
  for (int y = y0; y < y1; ++y) {
    const double* up = rows + static_cast<std::size_t>(y - 1) * bw;
    const double* mid = rows + static_cast<std::size_t>(y) * bw;
    const double* dn = rows + static_cast<std::size_t>(y + 1) * bw;
    const std::uint8_t* m = in + static_cast<std::size_t>(y) * bw;
    double* o = next + static_cast<std::size_t>(y) * bw;
    for (int x = x0; x < x1; ++x) o[x] = m[x] ? div9<kFma>((up[x] + mid[x]) + dn[x]) : 0.0;
  }
}

// The step for each instruction set, with the same results: AVX-512 and
// AVX2 with FMA's exact division, plain division elsewhere. The AVX-512 one
// walks down column strips of eight, keeping three rows' sums in registers
// (same sums, same order), over rows [y0, y1) and columns [x0, x1) only.
// (a[-1] + a[0]) + a[1] for eight lanes (k: the lanes in the row).
static __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma"), always_inline)) inline __m512d row_sum8(
    const double* a, __mmask8 k) {
  return _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(k, a - 1), _mm512_maskz_loadu_pd(k, a)),
                       _mm512_maskz_loadu_pd(k, a + 1));
}

static __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma"))) void diffuse_step_avx512(
    const double* __restrict t, double* __restrict next, const std::uint8_t* __restrict in, int bw, int y0, int y1,
    int x0, int x1) {
  const __m512d r = _mm512_set1_pd(1.0 / 9.0), nine = _mm512_set1_pd(9.0);
  for (int x = x0; x < x1; x += 8) {
    const __mmask8 k = x1 - x >= 8 ? __mmask8(0xff) : static_cast<__mmask8>((1u << (x1 - x)) - 1);
    __m512d above = row_sum8(t + static_cast<std::size_t>(y0 - 1) * bw + x, k),
            here = row_sum8(t + static_cast<std::size_t>(y0) * bw + x, k);
    for (int y = y0; y < y1; ++y) {
      const __m512d below = row_sum8(t + static_cast<std::size_t>(y + 1) * bw + x, k);
      const std::size_t i = static_cast<std::size_t>(y) * bw + x;
      const __m128i mb = _mm_maskz_loadu_epi8(k, in + i);
      const __mmask8 inside = static_cast<__mmask8>(_mm_test_epi8_mask(mb, mb));
      const __m512d s = _mm512_add_pd(_mm512_add_pd(above, here), below);
      const __m512d q = _mm512_mul_pd(s, r);
      const __m512d e = _mm512_fnmadd_pd(q, nine, s);  // s - 9q, exact
      _mm512_mask_storeu_pd(next + i, k, _mm512_maskz_fmadd_pd(inside, e, r, q));
      above = here;
      here = below;
    }
  }
}
static __attribute__((target("avx2,fma"))) void diffuse_step_avx2(const double* __restrict t, double* __restrict rows,
                                                                  double* __restrict next,
                                                                  const std::uint8_t* __restrict in, int bw, int y0,
                                                                  int y1, int x0, int x1) {
  diffuse_step_body<true>(t, rows, next, in, bw, y0, y1, x0, x1);
}
static void diffuse_step_generic(const double* __restrict t, double* __restrict rows, double* __restrict next,
                                 const std::uint8_t* __restrict in, int bw, int y0, int y1, int x0, int x1) {
  diffuse_step_body<false>(t, rows, next, in, bw, y0, y1, x0, x1);
}
static __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma"))) void diffuse_step_avx512_rows(
    const double* __restrict t, double* __restrict, double* __restrict next, const std::uint8_t* __restrict in, int bw,
    int y0, int y1, int x0, int x1) {
  diffuse_step_avx512(t, next, in, bw, y0, y1, x0, x1);
}

using DiffuseStep = void (*)(const double*, double*, double*, const std::uint8_t*, int, int, int, int, int);
static DiffuseStep pick_diffuse_step() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("fma")) {
    return diffuse_step_avx512_rows;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return diffuse_step_avx2;
  return diffuse_step_generic;
}

static int diffusion_steps(const std::vector<Box>& boxes, std::uint32_t count) {
  int niter = 0;
  for (std::uint32_t l = 1; l <= count; ++l) {
    const Box& b = boxes[l];
    if (b.y1 > b.y0) niter = std::max(niter, 2 * ((b.y1 - b.y0) + (b.x1 - b.x0) + 2));
  }
  return niter;
}

static void diffuse_masks(const Labels& labels, const std::vector<Box>& boxes, double* temp) {
  const int w = labels.width;
  const int niter = diffusion_steps(boxes, labels.count);
  static const DiffuseStep step = pick_diffuse_step();
  // Masks are independent (diffusion stays within a mask), so each runs on
  // its own bounding box, padded by one, in parallel; each writes only its
  // own pixels of T. Scratch buffers are per thread, reused across masks.
#pragma omp parallel
  {
    std::vector<std::uint8_t> in;
    std::vector<double> t, rows, next;
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t li = 1; li <= static_cast<std::int64_t>(labels.count); ++li) {
      const auto l = static_cast<std::uint32_t>(li);
      const Box& b = boxes[l];
      if (b.y1 <= b.y0) continue;
      int cy = 0, cx = 0;
      mask_centre(labels.data, w, b, l, cy, cx);
      const int bh = b.y1 - b.y0 + 2;
      const int bw = b.x1 - b.x0 + 2;
      const std::size_t size = static_cast<std::size_t>(bh) * bw;
      in.assign(size, 0);
      for (int y = b.y0; y < b.y1; ++y) {
        const std::uint32_t* row = &labels.data[static_cast<std::size_t>(y) * w];
        std::uint8_t* o = &in[static_cast<std::size_t>(y - b.y0 + 1) * bw + 1];
        for (int x = b.x0; x < b.x1; ++x) o[x - b.x0] = row[x] == l;
      }
      // T outside the mask stays 0, so the 3 x 3 sum over all neighbours is
      // the sum over same-mask neighbours; Cellpose divides by 9 either way.
      t.assign(size, 0.0);
      rows.assign(size, 0.0);
      next.assign(size, 0.0);
      const int ly = cy - b.y0 + 1, lx = cx - b.x0 + 1;  // the centre in the box
      const std::size_t centre = static_cast<std::size_t>(ly) * bw + lx;
      for (int it = 0; it < niter; ++it) {
        t[centre] += 1.0;
        step(t.data(), rows.data(), next.data(), in.data(), bw, std::max(1, ly - it - 1), std::min(bh - 1, ly + it + 2),
             std::max(1, lx - it - 1), std::min(bw - 1, lx + it + 2));
        t.swap(next);
      }
      for (int y = b.y0; y < b.y1; ++y) {
        for (int x = b.x0; x < b.x1; ++x) {
          const std::size_t local = static_cast<std::size_t>(y - b.y0 + 1) * bw + (x - b.x0 + 1);
          if (in[local]) temp[static_cast<std::size_t>(y) * w + x] = t[local];
        }
      }
    }
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

  // Heat per pixel, 0 outside masks.
  std::vector<double> temp(npix, 0.0);
  diffuse_masks(labels, bounding_boxes(labels.data, h, w, labels.count), temp.data());

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

std::vector<double> flow_errors(const Labels& labels, const Flows& flows, const std::vector<Box>& boxes, double* temp) {
  const int h = labels.height;
  const int w = labels.width;
  std::vector<double> err(labels.count, 0.0);
  if (labels.count == 0) return err;
  diffuse_masks(labels, boxes, temp);
  // Per mask, over its pixels in raster order (the order of a whole-image
  // sum): Cellpose's unit flow from the central differences of T (a
  // neighbour in another mask counts, background and outside the image are
  // 0; T is read only at mask pixels, so the rest of `temp` may hold
  // anything), against dP_net / 5 in float32, compared in float64.
  const std::uint32_t* lab = labels.data.data();
  const auto at = [&](std::size_t j) { return lab[j] ? temp[j] : 0.0; };
#pragma omp parallel for schedule(dynamic, 8)
  for (std::int64_t li = 1; li <= static_cast<std::int64_t>(labels.count); ++li) {
    const auto l = static_cast<std::uint32_t>(li);
    const Box& b = boxes[l];
    double sum = 0.0;
    std::int64_t n = 0;
    for (int y = b.y0; y < b.y1; ++y) {
      for (int x = b.x0; x < b.x1; ++x) {
        const std::size_t i = static_cast<std::size_t>(y) * w + x;
        if (lab[i] != l) continue;
        const double up = y > 0 ? at(i - w) : 0.0;
        const double down = y + 1 < h ? at(i + w) : 0.0;
        const double left = x > 0 ? at(i - 1) : 0.0;
        const double right = x + 1 < w ? at(i + 1) : 0.0;
        const double dy = down - up;
        const double dx = right - left;
        const double norm = 1e-60 + std::sqrt(dy * dy + dx * dx);
        const double ey = dy / norm - static_cast<double>(flows.dy[i] / 5.0f);
        const double ex = dx / norm - static_cast<double>(flows.dx[i] / 5.0f);
        sum += ey * ey + ex * ex;
        ++n;
      }
    }
    err[l - 1] = n ? sum / static_cast<double>(n) : 0.0;
  }
  return err;
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
