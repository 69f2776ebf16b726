// Arrays in and out of files, chosen by extension.
#pragma once

#include <string>

#include "cpipc/io/array.hpp"

namespace cpipc::io {

// .npy; .png .tif .tiff .jpg .jpeg .bmp through OpenCV (gray -> [H, W],
// colour -> [H, W, C] in RGB(A) order); uncompressed TIFF without it too.
// Throws Error(not_found) for a missing file, Error(invalid_argument) for
// one that cannot be decoded or is not a regular file, Error(out_of_memory)
// (before decoding) for an image whose pixels do not fit in memory.
[[nodiscard]] Array read_array(const std::string& path);

// .npy; .bin (raw bytes in C order, like numpy's tofile); .png (8/16-bit;
// wider integer labels are narrowed to uint16 when they fit; without OpenCV
// written uncompressed); .tif/.tiff (needs OpenCV).
// Throws Error(invalid_argument) for an extension or dtype that file type
// cannot hold, Error(io) when writing fails (every write, the fsync and the
// close are checked; see OutputFile), leaving the old file as it was.
void write_array(const std::string& path, const ipc::HostView& view);

// An RGB picture, uint8 [H, W, 3] or a stack of them [Z, H, W, 3]
// (C-contiguous), by extension: .tif/.tiff as RGB pages (one per plane,
// ImageJ slices: Fiji shows them in colour), .png (one plane), .npy, .bin.
// Throws as write_array, and Error(invalid_argument) for a stack to .png.
void write_picture(const std::string& path, const ipc::HostView& view);

// True if the OpenCV codec plugin is there, for every image format. Without
// it, uncompressed TIFF is still read and PNG still written (uncompressed).
[[nodiscard]] bool image_codecs_available() noexcept;

}  // namespace cpipc::io
