// Mask outlines as Cellpose draws and saves them (utils.outlines_list,
// io.outlines_to_text: the `<stem>_cp_outlines.txt` file ImageJ reads).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cpipc::io {

// One closed polygon: pixel coordinates {x, y}, in OpenCV's contour order.
using Polygon = std::vector<std::array<int, 2>>;

// The outer contour of each mask in `labels` (row-major, height x width,
// 0 = background), exactly as Cellpose 4 computes it: for each label 1..count
// present in the image, in increasing order, cv::findContours(RETR_EXTERNAL,
// CHAIN_APPROX_NONE) of that mask, the contour with the most points when
// the mask has several pieces (pieces inside a hole of another do not count;
// of equals, the first in findContours' list, which is in reverse raster
// order of the pieces' first pixels: the piece that starts last wins); a
// polygon of 4 points or fewer (a mask of 1, 2 or a 2x2 block of pixels) is
// returned empty, as Cellpose does. Labels absent from the image get no
// entry, so for masks numbered 1..count without gaps, entry i is label
// i + 1. Labels above `count` are ignored. (Cellpose also drops the lowest
// label when no pixel is background; this does not.)
// Needs no OpenCV: the border following is cpipc's own (src/io/contours.hpp),
// point for point findContours'. Throws Error(invalid_argument) for a
// negative size or no data.
[[nodiscard]] std::vector<Polygon> outline_polygons(const std::uint32_t* labels, int height, int width,
                                                    std::uint32_t count);

// Writes `polygons` as Cellpose's outlines text: one line per polygon,
// "x0,y0,x1,y1,..." in decimal, "\n" after each line (an empty polygon is an
// empty line). Throws Error(io) when the file cannot be written.
void write_outlines_txt(const std::string& path, const std::vector<Polygon>& polygons);

}  // namespace cpipc::io
