// The outer borders of binary objects, point for point what
// cv::findContours(image, RETR_EXTERNAL, CHAIN_APPROX_NONE) returns, without
// OpenCV: the outlines text (outlines.hpp) is then the same in a build with
// or without it. The method is Suzuki and Abe's border following ("Topological
// structural analysis of digitized binary images by border following", 1985),
// outer borders only, with OpenCV's choices wherever the paper leaves one.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "cpipc/io/outlines.hpp"

namespace cpipc::io::detail {

// The outer border of each 8-connected object of `grid` that is not inside a
// hole of another, in findContours' order: the reverse of the raster order
// of the objects' first pixels. Each polygon starts at its object's first
// pixel and goes down its left side (counterclockwise as displayed, y down)
// through every border pixel, a pixel again where the border passes it twice
// (a line one pixel wide), and ends at the pixel before the start; a lone
// pixel is one point. Pixel (x, y) of the grid is point {x + origin[0],
// y + origin[1]}.
// `grid`: rows x cols, row-major, 0 = background and 1 = object, with
// background all round its edge (first and last row and column). It is
// scratch: the border following writes its marks into it.
[[nodiscard]] std::vector<Polygon> trace_outer_borders(std::span<std::uint8_t> grid, int rows, int cols,
                                                       std::array<int, 2> origin);

// The same for any height x width binary image (nonzero = object, row-major,
// objects may touch its edge): cv::findContours' result for it.
[[nodiscard]] std::vector<Polygon> external_contours(const std::uint8_t* image, int height, int width);

}  // namespace cpipc::io::detail
