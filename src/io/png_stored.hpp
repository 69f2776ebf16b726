// cpipc's own PNG writer, for where the OpenCV plugin is missing: no zlib,
// so the image data is a zlib stream of stored (uncompressed) deflate
// blocks, which every PNG reader decodes. The file is about as large as the
// raw pixels; OpenCV's writer, where it is there, compresses.
#pragma once

#include <string>

#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io::detail {

// Writes a C-contiguous uint8 or uint16 image (bool as uint8) as a PNG:
// [H, W] or [H, W, 1] gray, [H, W, 3] RGB, [H, W, 4] RGBA. A gray image of
// 32- or 64-bit integers (labels) is narrowed to uint16 when every value
// fits, as the OpenCV plugin does (io::labels_as_uint16).
// Throws Error(invalid_argument) for any other shape or dtype, Error(io)
// when the file cannot be written.
void write_png_stored(const std::string& path, const ipc::HostView& view);

}  // namespace cpipc::io::detail
