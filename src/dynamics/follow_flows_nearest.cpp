// Cellpose 3's steps2D: flow following that reads the field at the truncated
// position instead of interpolating. Only its size model uses it, on a
// downscaled image, so a plain loop parallel over pixels is enough.
#include <algorithm>
#include <string>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"

namespace cpipc::dynamics {

Positions follow_flows_nearest(const Flows& f, std::span<const std::int64_t> pixels, float cellprob_threshold,
                               int niter) {
  const int h = f.height;
  const int w = f.width;
  const std::size_t n = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  if (h < 0 || w < 0 || f.dy.size() != n || f.dx.size() != n || f.cellprob.size() != n) {
    throw Error(Errc::invalid_argument,
                "flows and cellprob must all be " + std::to_string(h) + " x " + std::to_string(w));
  }
  if (niter < 0) throw Error(Errc::invalid_argument, "niter must be >= 0");
  // The field Cellpose steps through: dP * (cellprob > threshold) / 5, float32.
  std::vector<float> fy(n), fx(n);
  for (std::size_t i = 0; i < n; ++i) {
    const bool fg = f.cellprob[i] > cellprob_threshold;
    fy[i] = (fg ? f.dy[i] : 0.0f) / 5.0f;
    fx[i] = (fg ? f.dx[i] : 0.0f) / 5.0f;
  }
  const auto count = static_cast<std::int64_t>(pixels.size());
  Positions out;
  out.y.resize(pixels.size());
  out.x.resize(pixels.size());
  const auto ymax = static_cast<float>(h - 1);
  const auto xmax = static_cast<float>(w - 1);
#pragma omp parallel for schedule(static)
  for (std::int64_t j = 0; j < count; ++j) {
    const std::int64_t p = pixels[static_cast<std::size_t>(j)];
    if (p < 0 || static_cast<std::size_t>(p) >= n) continue;  // checked below, outside the parallel loop
    auto py = static_cast<float>(p / w);
    auto px = static_cast<float>(p % w);
    for (int t = 0; t < niter; ++t) {
      // Positions stay in [0, L - 1], so truncation is floor.
      const std::size_t i = static_cast<std::size_t>(py) * static_cast<std::size_t>(w) + static_cast<std::size_t>(px);
      const float sy = fy[i];
      const float sx = fx[i];
      py = std::min(ymax, std::max(0.0f, py + sy));
      px = std::min(xmax, std::max(0.0f, px + sx));
    }
    out.y[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(py);
    out.x[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(px);
  }
  for (const std::int64_t p : pixels) {
    if (p < 0 || static_cast<std::size_t>(p) >= n) {
      throw Error(Errc::invalid_argument, "pixel index " + std::to_string(p) + " lies outside the image");
    }
  }
  return out;
}

}  // namespace cpipc::dynamics
