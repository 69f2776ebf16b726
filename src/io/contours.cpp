#include "contours.hpp"

#include <algorithm>
#include <cstddef>

namespace cpipc::io::detail {

namespace {

// What a grid pixel holds. The two border marks are Suzuki's NBD and -NBD
// for the single border number that outer borders alone need.
enum : std::uint8_t {
  kBackground = 0,
  kObject = 1,       // not (yet) seen by a border following
  kBorder = 2,       // on a followed border
  kRightBorder = 3,  // on a followed border that found background east of it
};

// The 8 neighbours, numbered counterclockwise as displayed (y down) from
// east, as OpenCV's chain codes: 0 E, 1 NE, 2 N, 3 NW, 4 W, 5 SW, 6 S, 7 SE.
constexpr int kDx[8] = {1, 1, 0, -1, -1, -1, 0, 1};
constexpr int kDy[8] = {0, -1, -1, -1, 0, 1, 1, 1};

// Follows the outer border from `start`, an object pixel with background to
// its west met by the raster scan, marking the border pixels in the grid.
Polygon follow_border(std::uint8_t* start, std::ptrdiff_t cols, std::array<int, 2> point) {
  // Offsets of the neighbours, twice round, so that a search from any
  // direction can run 8 steps without wrapping its index.
  std::ptrdiff_t step[16];
  for (int d = 0; d < 16; ++d) step[d] = kDx[d & 7] + kDy[d & 7] * cols;

  Polygon polygon;
  // The border ends at the first object neighbour clockwise from the
  // north-west: 3, 2, 1, 0, 7, 6, 5 (as 11 down to 5); west is the
  // background the scan came from.
  int d = 11;
  while (d > 4 && start[step[d]] == kBackground) --d;
  if (d == 4) {  // a lone pixel: one point, marked as Suzuki's step 3.2 does
    *start = kRightBorder;
    polygon.push_back(point);
    return polygon;
  }
  const std::uint8_t* const last = start + step[d];
  int back = d & 7;  // where the pixel before the current one lies
  for (std::uint8_t* p = start;;) {
    // The next border pixel: the first object neighbour counterclockwise
    // after the previous one. It is found by back + 8 at the latest, where
    // the previous pixel itself is.
    d = back + 1;
    while (p[step[d]] == kBackground) ++d;
    // Passing east (d == 8) as background makes this a right border: the
    // background after it on the row is outside the object, so the scan
    // may start a new border there.
    if (d > 8) {
      *p = kRightBorder;
    } else if (*p == kObject) {
      *p = kBorder;
    }
    polygon.push_back(point);
    std::uint8_t* const next = p + step[d];
    // Back at the start from the pixel the border ends at: a border that
    // passes the start pixel in the middle (a figure of eight) goes on.
    if (p == last && next == start) break;
    d &= 7;
    point[0] += kDx[d];
    point[1] += kDy[d];
    p = next;
    back = (d + 4) & 7;
  }
  return polygon;
}

}  // namespace

std::vector<Polygon> trace_outer_borders(std::span<std::uint8_t> grid, int rows, int cols, std::array<int, 2> origin) {
  std::vector<Polygon> found;
  for (int y = 1; y < rows - 1; ++y) {
    std::uint8_t* const row = grid.data() + static_cast<std::ptrdiff_t>(y) * cols;
    std::uint8_t prev = kBackground;
    int last_border = 0;  // the column of the last border met on this row (0: the background edge)
    for (int x = 1; x < cols - 1; ++x) {
      const std::uint8_t p = row[x];
      if (p == prev) continue;
      if (prev == kBackground && p == kObject) {
        // An outer border starts here unless the last border to the left
        // is a left one: then this object is the one already followed and
        // the background to its west is a hole in it.
        if (row[last_border] != kBorder) {
          found.push_back(follow_border(row + x, cols, {x + origin[0], y + origin[1]}));
          last_border = x;
          prev = row[x];
          continue;
        }
      } else if (p == kBackground && prev == kBorder) {
        last_border = x - 1;
      }
      prev = p;
      if (p == kBorder || p == kRightBorder) last_border = x;
    }
  }
  // findContours links each new contour in front of the ones found before.
  std::reverse(found.begin(), found.end());
  return found;
}

std::vector<Polygon> external_contours(const std::uint8_t* image, int height, int width) {
  if (height <= 0 || width <= 0) return {};
  // Framed with background, as findContours frames the image itself.
  const int rows = height + 2;
  const int cols = width + 2;
  std::vector<std::uint8_t> grid(static_cast<std::size_t>(rows) * cols, kBackground);
  for (int y = 0; y < height; ++y) {
    const std::uint8_t* in = image + static_cast<std::size_t>(y) * width;
    std::uint8_t* out = grid.data() + static_cast<std::size_t>(y + 1) * cols + 1;
    for (int x = 0; x < width; ++x) out[x] = in[x] != 0 ? kObject : kBackground;
  }
  return trace_outer_borders(grid, rows, cols, {-1, -1});
}

}  // namespace cpipc::io::detail
