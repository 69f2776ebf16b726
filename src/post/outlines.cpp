#include "cpipc/post/outlines.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/util/order_statistics.hpp"
#include "label_index.hpp"
#include "percentiles.hpp"

namespace cpipc::post {

namespace {

struct Box {
  int y0, x0, y1, x1;  // end exclusive
};

// One channel (stride `channels` from `first`) into byte `out_channel` of
// each RGB pixel, scaled as Cellpose's normalize99 + image_to_rgb: float32
// arithmetic, then truncation to uint8.
void scale_channel(const float* first, std::size_t pixels, int channels, std::uint8_t* rgb, int out_channel) {
  std::vector<float> values;
  values.reserve(pixels);
  for (std::size_t i = 0; i < pixels; ++i) {
    const float v = first[i * static_cast<std::size_t>(channels)];
    if (!std::isnan(v)) values.push_back(v);
  }
  if (values.empty()) return;
  const auto [p1, p99] = detail::percentiles(values, 1, 99);
  const float range = p99 - p1;
  if (!(range > 1e-3f)) return;  // Cellpose: X[:] = 0
  for (std::size_t i = 0; i < pixels; ++i) {
    const float v = first[i * static_cast<std::size_t>(channels)];
    if (std::isnan(v)) continue;
    const float unit = std::clamp((v - p1) / range, 0.0f, 1.0f);
    rgb[i * 3 + static_cast<std::size_t>(out_channel)] = static_cast<std::uint8_t>(unit * 255.0f);
  }
}

}  // namespace

std::vector<std::uint8_t> outline_mask(const std::uint32_t* labels, int height, int width) {
  detail::check_image(labels, height, width, "outline_mask");
  const std::size_t h = static_cast<std::size_t>(height);
  const std::size_t w = static_cast<std::size_t>(width);
  std::vector<std::uint8_t> outlines(h * w, 0);
  const detail::LabelIndex ix = detail::index_labels(labels, h * w);
  const std::vector<std::uint32_t>& obj = ix.object_of_pixel;
  std::vector<Box> boxes(ix.labels.size(), Box{height, width, 0, 0});
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const std::uint32_t o = obj[static_cast<std::size_t>(y) * w + static_cast<std::size_t>(x)];
      if (!o) continue;
      Box& b = boxes[o - 1];
      b = {std::min(b.y0, y), std::min(b.x0, x), std::max(b.y1, y + 1), std::max(b.x1, x + 1)};
    }
  }
  // Per object, in its box padded by one pixel: the pixels that are not the
  // object and are 4-connected to the padding are the outside (every other
  // background pixel is in a hole); object pixels with a 4-neighbour
  // outside are outline pixels. This is the set that border following
  // (Suzuki-Abe, OpenCV's findContours with RETR_EXTERNAL) traces: objects
  // are 8-connected, background 4-connected, holes' rims are not outer borders.
  enum : std::uint8_t { kOther = 0, kObject = 1, kOutside = 2 };
  std::vector<std::uint8_t> cells;
  std::vector<std::size_t> stack;
  for (std::size_t k = 0; k < boxes.size(); ++k) {
    const Box& b = boxes[k];
    const std::uint32_t o = static_cast<std::uint32_t>(k) + 1;
    const std::size_t bw = static_cast<std::size_t>(b.x1 - b.x0) + 2;
    const std::size_t bh = static_cast<std::size_t>(b.y1 - b.y0) + 2;
    cells.assign(bw * bh, kOther);
    for (int y = b.y0; y < b.y1; ++y) {
      const std::uint32_t* row = obj.data() + static_cast<std::size_t>(y) * w;
      std::uint8_t* cell_row = cells.data() + static_cast<std::size_t>(y - b.y0 + 1) * bw + 1;
      for (int x = b.x0; x < b.x1; ++x) cell_row[x - b.x0] = row[x] == o ? kObject : kOther;
    }
    stack.assign(1, 0);
    cells[0] = kOutside;
    while (!stack.empty()) {
      const std::size_t i = stack.back();
      stack.pop_back();
      const std::size_t cy = i / bw, cx = i % bw;
      const auto visit = [&](std::size_t j) {
        if (cells[j] == kOther) {
          cells[j] = kOutside;
          stack.push_back(j);
        }
      };
      if (cy > 0) visit(i - bw);
      if (cy + 1 < bh) visit(i + bw);
      if (cx > 0) visit(i - 1);
      if (cx + 1 < bw) visit(i + 1);
    }
    for (int y = b.y0; y < b.y1; ++y) {
      for (int x = b.x0; x < b.x1; ++x) {
        const std::size_t i = static_cast<std::size_t>(y - b.y0 + 1) * bw + static_cast<std::size_t>(x - b.x0 + 1);
        if (cells[i] != kObject) continue;
        if (cells[i - bw] == kOutside || cells[i + bw] == kOutside || cells[i - 1] == kOutside ||
            cells[i + 1] == kOutside) {
          outlines[static_cast<std::size_t>(y) * w + static_cast<std::size_t>(x)] = 1;
        }
      }
    }
  }
  return outlines;
}

std::vector<std::uint8_t> display_rgb(const float* image, int height, int width, int channels) {
  detail::check_image(image, height, width, "display_rgb");
  if (channels < 1) throw Error(Errc::invalid_argument, "display_rgb: channels must be at least 1");
  const std::size_t pixels = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  std::vector<std::uint8_t> rgb(pixels * 3, 0);
  if (pixels == 0) return rgb;
  if (channels == 1) {
    scale_channel(image, pixels, channels, rgb.data(), 0);
    for (std::size_t i = 0; i < pixels; ++i) rgb[i * 3 + 1] = rgb[i * 3 + 2] = rgb[i * 3];
  } else {
    for (int ch = 0; ch < std::min(channels, 3); ++ch) scale_channel(image + ch, pixels, channels, rgb.data(), ch);
  }
  return rgb;
}

void paint(std::uint8_t* rgb, const std::uint8_t* outlines, int height, int width, Rgb colour) noexcept {
  const std::size_t pixels =
      static_cast<std::size_t>(std::max(height, 0)) * static_cast<std::size_t>(std::max(width, 0));
  for (std::size_t i = 0; i < pixels; ++i) {
    if (outlines[i]) std::copy(colour.begin(), colour.end(), rgb + i * 3);
  }
}

std::vector<std::uint8_t> draw_outlines(const std::uint32_t* labels, int height, int width, const float* image,
                                        int channels, Rgb colour) {
  const std::vector<std::uint8_t> outlines = outline_mask(labels, height, width);
  return outlines_picture(outlines.data(), height, width, image, channels, colour);
}

std::vector<std::uint8_t> outlines_picture(const std::uint8_t* outlines, int height, int width, const float* image,
                                           int channels, Rgb colour) {
  std::vector<std::uint8_t> rgb =
      image ? display_rgb(image, height, width, channels)
            : std::vector<std::uint8_t>(
                  static_cast<std::size_t>(std::max(height, 0)) * static_cast<std::size_t>(std::max(width, 0)) * 3, 0);
  paint(rgb.data(), outlines, height, width, colour);
  return rgb;
}

}  // namespace cpipc::post
