// cpipc's own reader for uncompressed baseline TIFF (TIFF 6.0, part 1): the
// fallback where the OpenCV plugin is missing, and the reader of the uint32
// TIFFs that OpenCV 4 refuses (Cellpose's masks from 65536 labels on, which
// write_uint32_tiff also makes) and of those with more than 4 samples per
// pixel. Opens the file as RegularFile does.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::io::detail {

// The pages of a classic TIFF ("II" or "MM"), at most `max_pages`, each an
// Array [H, W] (one sample per pixel) or [H, W, C] (any number of samples,
// in file order: RGB(A) for colour, then ExtraSamples; OpenCV 4 reads at
// most 4), in native byte order. Reads strips of
// uncompressed, chunky (PlanarConfiguration 1) data of 8/16/32-bit unsigned
// or signed integers or 16/32/64-bit floats. Every offset and size is checked
// against the file before it is used, and no buffer is larger than the file.
// Throws Error(not_found) for a missing file, Error(io) when it cannot be
// opened, Error(invalid_argument) for a damaged file or a TIFF feature
// outside that set (compressed, tiled, planar, palette, 1-bit, BigTIFF, ...),
// one line that names the file and what to do.
[[nodiscard]] std::vector<Array> read_baseline_tiff(const std::string& path,
                                                    std::size_t max_pages = std::numeric_limits<std::size_t>::max());

}  // namespace cpipc::io::detail
