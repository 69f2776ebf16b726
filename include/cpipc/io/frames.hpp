// Images to segment, read from files: one Array per time point.
#pragma once

#include <string>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::io {

// The time points of an image file as read_image_file (image.hpp) reads
// them, without their axes: each [Y, X], [Y, X, C], [Z, Y, X] or
// [Z, Y, X, C]. For callers that need the axes, read_image_file.
[[nodiscard]] std::vector<Array> read_frames(const std::string& path);

}  // namespace cpipc::io
