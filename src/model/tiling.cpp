#include "cpipc/model/tiling.hpp"

#include <algorithm>
#include <cmath>

namespace cpipc::model {

std::int64_t rescaled_length(std::int64_t length, float rescale) noexcept {
  return static_cast<std::int64_t>(static_cast<float>(length) * rescale);
}

std::int64_t rescaled_length(std::int64_t length, double rescale) noexcept {
  return static_cast<std::int64_t>(static_cast<double>(length) * rescale);
}

Padding network_padding(std::int64_t length) noexcept {
  const std::int64_t extra = (16 - length % 16) % 16;
  return {8 + extra / 2, 8 + extra - extra / 2};
}

Padding network_padding(std::int64_t length, std::int64_t min_size) noexcept {
  if (length >= min_size) return network_padding(length);
  const std::int64_t extra = std::max<std::int64_t>(0, min_size - length - 16);
  return {8 + extra / 2, 8 + extra - extra / 2};
}

namespace {

// n tiles of `size`: starts numpy.linspace(0, length - size, n).astype(int).
TileAxis spaced_tiles(std::int64_t length, std::int64_t size, std::int64_t n) {
  TileAxis axis;
  axis.size = size;
  const double stop = static_cast<double>(length - axis.size);
  axis.starts.resize(static_cast<std::size_t>(n));
  // numpy.linspace: i * step for all but the last, which is exactly `stop`.
  const double step = n > 1 ? stop / static_cast<double>(n - 1) : 0.0;
  for (std::int64_t i = 0; i < n; ++i) axis.starts[i] = static_cast<std::int64_t>(i * step);
  if (n > 1) axis.starts.back() = static_cast<std::int64_t>(stop);
  return axis;
}

}  // namespace

TileAxis tile_axis(std::int64_t length, int tile, double overlap) {
  overlap = std::clamp(overlap, 0.05, 0.5);
  const std::int64_t n =
      length <= tile ? 1 : static_cast<std::int64_t>(std::ceil((1.0 + 2.0 * overlap) * length / tile));
  return spaced_tiles(length, std::min<std::int64_t>(tile, length), n);
}

TileAxis augmented_tile_axis(std::int64_t length, int tile) {
  const std::int64_t n = std::max<std::int64_t>(2, static_cast<std::int64_t>(std::ceil(2.0 * length / tile)));
  return spaced_tiles(length, tile, n);
}

std::vector<double> taper_mask(std::int64_t ly, std::int64_t lx) {
  const std::int64_t b = std::max<std::int64_t>(224, std::max(ly, lx));
  const double centre = static_cast<double>(b - 1) / 2.0;
  std::vector<double> m(static_cast<std::size_t>(b));
  for (std::int64_t i = 0; i < b; ++i) {
    m[i] = 1.0 / (1.0 + std::exp((std::abs(i - centre) - (static_cast<double>(b) / 2.0 - 20.0)) / 7.5));
  }
  const std::int64_t y0 = b / 2 - ly / 2;
  const std::int64_t x0 = b / 2 - lx / 2;
  std::vector<double> mask(static_cast<std::size_t>(ly * lx));
  for (std::int64_t y = 0; y < ly; ++y) {
    for (std::int64_t x = 0; x < lx; ++x) mask[y * lx + x] = m[y0 + y] * m[x0 + x];
  }
  return mask;
}

}  // namespace cpipc::model
