#include "cpipc/io/outlines.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include "contours.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/io/replace_file.hpp"

namespace cpipc::io {

std::vector<Polygon> outline_polygons(const std::uint32_t* labels, int height, int width, std::uint32_t count) {
  if (height < 0 || width < 0 || (labels == nullptr && height > 0 && width > 0)) {
    throw Error(Errc::invalid_argument, "outline_polygons: bad label image (" + std::to_string(height) + " x " +
                                            std::to_string(width) + (labels ? ")" : ", no data)"));
  }
  if (height == 0 || width == 0 || count == 0) return {};
  struct Box {
    int x0 = std::numeric_limits<int>::max(), y0 = std::numeric_limits<int>::max(), x1 = -1, y1 = -1;
  };
  // Indexed by label, up to the largest present, not to `count`, which may be anything.
  std::vector<Box> boxes(1);
  for (int y = 0; y < height; ++y) {
    const std::uint32_t* row = labels + static_cast<std::size_t>(y) * width;
    for (int x = 0; x < width; ++x) {
      const std::uint32_t n = row[x];
      if (n == 0 || n > count) continue;
      if (n >= boxes.size()) boxes.resize(std::size_t{n} + 1);
      Box& b = boxes[n];
      b.x0 = std::min(b.x0, x);
      b.x1 = std::max(b.x1, x);
      b.y0 = std::min(b.y0, y);
      b.y1 = std::max(b.y1, y);
    }
  }
  // Cellpose's utils.outlines_list_single, mask by mask, each on its bounding
  // box padded by one background pixel: findContours pads the whole image
  // so, hence the same contours, for the work of the box, not the image.
  std::vector<Polygon> out;
  std::vector<std::uint8_t> grid;
  for (std::size_t n = 1; n < boxes.size(); ++n) {
    const Box& b = boxes[n];
    if (b.x1 < 0) continue;  // absent: np.unique does not list it
    const int rows = b.y1 - b.y0 + 3;
    const int cols = b.x1 - b.x0 + 3;
    grid.assign(static_cast<std::size_t>(rows) * cols, 0);
    for (int y = b.y0; y <= b.y1; ++y) {
      const std::uint32_t* row = labels + static_cast<std::size_t>(y) * width;
      std::uint8_t* g = grid.data() + static_cast<std::size_t>(y - b.y0 + 1) * cols + 1;
      for (int x = b.x0; x <= b.x1; ++x) g[x - b.x0] = row[x] == n ? 1 : 0;
    }
    std::vector<Polygon> contours = detail::trace_outer_borders(grid, rows, cols, {b.x0 - 1, b.y0 - 1});
    Polygon& polygon = out.emplace_back();
    std::size_t longest = 0;  // np.argmax over findContours' list: the first of the longest
    for (std::size_t i = 1; i < contours.size(); ++i) {
      if (contours[i].size() > contours[longest].size()) longest = i;
    }
    // Cellpose keeps a contour only if len(pix) > 4 (a 1-point contour squeezes to 2 numbers).
    if (contours[longest].size() > 4) polygon = std::move(contours[longest]);
  }
  return out;
}

namespace {

void write_outlines_at(const std::string& path, const std::vector<Polygon>& polygons) {
  OutputFile out(path);
  std::string text;  // written in pieces of about 1 MiB
  char number[16];
  for (const Polygon& polygon : polygons) {
    const std::size_t start = text.size();
    for (const auto& point : polygon) {
      for (const int v : point) {
        if (text.size() > start) text += ',';
        text.append(number, std::to_chars(number, number + sizeof number, v).ptr);
      }
    }
    text += '\n';
    if (text.size() >= (1u << 20)) {
      out.write(text.data(), text.size());
      text.clear();
    }
  }
  out.write(text.data(), text.size());
  out.close();
}

}  // namespace

void write_outlines_txt(const std::string& path, const std::vector<Polygon>& polygons) {
  write_replacing(path, [&](const std::string& to) { write_outlines_at(to, polygons); });
}

}  // namespace cpipc::io
