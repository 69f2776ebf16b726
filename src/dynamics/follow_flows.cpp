// Flow following: every foreground pixel takes `niter` Euler steps along the
// network's flow field, sampled bilinearly the way Cellpose 4 does it
// (torch grid_sample, align_corners=False, zeros outside), in float32 and in
// grid_sample's normalised [-1, 1] coordinates so that rounding matches.
#include <algorithm>
#include <cmath>

#include "cpipc/dynamics/dynamics.hpp"

namespace cpipc::dynamics {

namespace {

constexpr int kBlock = 64;  // pixels stepped together: independent chains, and SIMD lanes

// Steps `m` positions (normalised, as grid_sample) `niter` times through the
// field (fx, fy planes with a one-pixel zero border, stride width + 2), the
// bilinear read and clamp exactly as Cellpose's grid_sample loop. Written as
// a plain loop over the pixels so the compiler vectorises it (with AVX2
// gathers where the CPU has them; no FMA, so rounding matches).
__attribute__((target_clones("avx2", "default"))) void step_block(const float* __restrict fx,
                                                                  const float* __restrict fy, int height, int width,
                                                                  float* __restrict gx, float* __restrict gy, int m,
                                                                  int niter) {
  const float fw = static_cast<float>(width);
  const float fh = static_cast<float>(height);
  const int stride = width + 2;
  for (int t = 0; t < niter; ++t) {
    for (int j = 0; j < m; ++j) {
      const float ix = ((gx[j] + 1.0f) * fw - 1.0f) * 0.5f;
      const float iy = ((gy[j] + 1.0f) * fh - 1.0f) * 0.5f;
      // floor for ix, iy >= -1 (positions are clamped): truncate, step back if above
      int xi = static_cast<int>(ix);
      int yi = static_cast<int>(iy);
      xi -= ix < static_cast<float>(xi) ? 1 : 0;
      yi -= iy < static_cast<float>(yi) ? 1 : 0;
      const float fx0 = static_cast<float>(xi);
      const float fy0 = static_cast<float>(yi);
      const float wx1 = ix - fx0;
      const float wy1 = iy - fy0;
      const float wx0 = (fx0 + 1.0f) - ix;
      const float wy0 = (fy0 + 1.0f) - iy;
      const int i00 = (yi + 1) * stride + (xi + 1);
      const float w00 = wx0 * wy0, w01 = wx1 * wy0, w10 = wx0 * wy1, w11 = wx1 * wy1;
      const float dx = ((fx[i00] * w00 + fx[i00 + 1] * w01) + fx[i00 + stride] * w10) + fx[i00 + stride + 1] * w11;
      const float dy = ((fy[i00] * w00 + fy[i00 + 1] * w01) + fy[i00 + stride] * w10) + fy[i00 + stride + 1] * w11;
      const float nx = gx[j] + dx;
      const float ny = gy[j] + dy;
      gx[j] = nx < -1.0f ? -1.0f : (nx > 1.0f ? 1.0f : nx);
      gy[j] = ny < -1.0f ? -1.0f : (ny > 1.0f ? 1.0f : ny);
    }
  }
}

}  // namespace

Positions follow_flows(const Flows& f, std::span<const std::int64_t> pixels, float cellprob_threshold, int niter) {
  const int h = f.height;
  const int w = f.width;
  const auto n = static_cast<std::int64_t>(pixels.size());
  Positions out;
  out.y.resize(pixels.size());
  out.x.resize(pixels.size());
  // An axis of length 1 cannot move (Cellpose would divide by zero there).
  const float sx = w > 1 ? static_cast<float>(2.0 / (w - 1)) : 0.0f;
  const float sy = h > 1 ? static_cast<float>(2.0 / (h - 1)) : 0.0f;
  const float lx = static_cast<float>(std::max(w - 1, 1));
  const float ly = static_cast<float>(std::max(h - 1, 1));

  // The field Cellpose samples: dP * foreground / 5, in normalised units,
  // with a zero border.
  const std::int64_t stride = w + 2;
  std::vector<float> fx(static_cast<std::size_t>((h + 2) * stride), 0.0f);
  std::vector<float> fy(fx.size(), 0.0f);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const std::int64_t i = static_cast<std::int64_t>(y) * w + x;
      const bool fg = f.cellprob[i] > cellprob_threshold;
      const auto k = static_cast<std::size_t>((y + 1) * stride + x + 1);
      fx[k] = (fg ? f.dx[i] : 0.0f) / 5.0f * sx;
      fy[k] = (fg ? f.dy[i] : 0.0f) / 5.0f * sy;
    }
  }

  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(dynamic, 16)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t first = blk * kBlock;
    const int m = static_cast<int>(std::min<std::int64_t>(kBlock, n - first));
    float gx[kBlock], gy[kBlock];
    for (int j = 0; j < m; ++j) {
      const std::int64_t p = pixels[first + j];
      gy[j] = h == 1 ? -1.0f : static_cast<float>(p / w) / ly * 2.0f - 1.0f;
      gx[j] = w == 1 ? -1.0f : static_cast<float>(p % w) / lx * 2.0f - 1.0f;
    }
    step_block(fx.data(), fy.data(), h, w, gx, gy, m, niter);
    for (int j = 0; j < m; ++j) {
      out.x[first + j] = static_cast<std::int32_t>((gx[j] + 1.0f) * 0.5f * lx);
      out.y[first + j] = static_cast<std::int32_t>((gy[j] + 1.0f) * 0.5f * ly);
    }
  }
  return out;
}

}  // namespace cpipc::dynamics
