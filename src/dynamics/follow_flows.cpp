// Flow following: every foreground pixel takes `niter` Euler steps along the
// network's flow field, sampled bilinearly the way Cellpose 4 does it
// (torch grid_sample, align_corners=False, zeros outside), in float32 and in
// grid_sample's normalised [-1, 1] coordinates so that rounding matches.
#include <algorithm>
#include <cmath>

#include "cpipc/dynamics/dynamics.hpp"

namespace cpipc::dynamics {

namespace {

struct Vec2 {
  float x, y;
};

constexpr int kBlock = 32;  // pixels stepped together: independent chains hide latency

// grid_sample's bilinear read of the (x, y) field at normalised (gx, gy).
// `field` has a one-pixel zero border (stride width + 2), which stands for
// grid_sample's zeros outside: clamped positions never reach further out.
inline Vec2 sample(const Vec2* field, int height, int width, float gx, float gy) noexcept {
  const float ix = ((gx + 1.0f) * static_cast<float>(width) - 1.0f) / 2.0f;
  const float iy = ((gy + 1.0f) * static_cast<float>(height) - 1.0f) / 2.0f;
  // floor without a libm call (x86-64 without SSE4.1 has no inline floor)
  int xi = static_cast<int>(ix);
  int yi = static_cast<int>(iy);
  xi -= ix < static_cast<float>(xi);
  yi -= iy < static_cast<float>(yi);
  const float fx0 = static_cast<float>(xi);
  const float fy0 = static_cast<float>(yi);
  const float wx1 = ix - fx0;
  const float wy1 = iy - fy0;
  const float wx0 = (fx0 + 1.0f) - ix;
  const float wy0 = (fy0 + 1.0f) - iy;
  const std::int64_t stride = width + 2;
  const Vec2* p = field + (static_cast<std::int64_t>(yi) + 1) * stride + (xi + 1);
  const Vec2 a = p[0], b = p[1], c = p[stride], d = p[stride + 1];
  const float w00 = wx0 * wy0, w01 = wx1 * wy0, w10 = wx0 * wy1, w11 = wx1 * wy1;
  return {((a.x * w00 + b.x * w01) + c.x * w10) + d.x * w11, ((a.y * w00 + b.y * w01) + c.y * w10) + d.y * w11};
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
  std::vector<Vec2> field(static_cast<std::size_t>((h + 2) * stride), Vec2{0.0f, 0.0f});
#pragma omp parallel for schedule(static)
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const std::int64_t i = static_cast<std::int64_t>(y) * w + x;
      const bool fg = f.cellprob[i] > cellprob_threshold;
      Vec2& v = field[static_cast<std::size_t>((y + 1) * stride + x + 1)];
      v.x = (fg ? f.dx[i] : 0.0f) / 5.0f * sx;
      v.y = (fg ? f.dy[i] : 0.0f) / 5.0f * sy;
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
    for (int t = 0; t < niter; ++t) {
      for (int j = 0; j < m; ++j) {
        const Vec2 d = sample(field.data(), h, w, gx[j], gy[j]);
        gx[j] = std::clamp(gx[j] + d.x, -1.0f, 1.0f);
        gy[j] = std::clamp(gy[j] + d.y, -1.0f, 1.0f);
      }
    }
    for (int j = 0; j < m; ++j) {
      out.x[first + j] = static_cast<std::int32_t>((gx[j] + 1.0f) * 0.5f * lx);
      out.y[first + j] = static_cast<std::int32_t>((gy[j] + 1.0f) * 0.5f * ly);
    }
  }
  return out;
}

}  // namespace cpipc::dynamics
