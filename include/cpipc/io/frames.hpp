// Images to segment, read from files: one Array per frame.
#pragma once

#include <string>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::io {

// The frames of an image file, each [H, W] (gray) or [H, W, C] (channels
// last, RGB(A) order for colour images), of uint8/int8/uint16/int16/
// uint32/int32/float16/float32/float64 (bool is read as uint8).
//
// - .tif/.tiff: one frame per page (a multi-page TIFF is a stack);
//   .png .jpg .jpeg .bmp: one frame. Decoded by the OpenCV codec plugin;
//   uncompressed TIFF also without it, and the uint32 TIFFs and TIFFs of
//   more than 4 samples per pixel OpenCV 4 cannot read, by cpipc's own
//   baseline TIFF reader.
// - .npy: one frame. [H, W] is gray; [H, W, C] is C channels when C <= 8.
//   Any other 3-D shape (a [N, H, W] stack, or channels first) is refused,
//   as are 1-D, 4-D and 5-D arrays: save one .npy per frame, channels last.
// - 1x1 images are read (whether they can be segmented is the segmenter's
//   call); an image with no pixels is refused ("empty image").
//
// Throws Error(not_found) for a missing file; Error(invalid_argument) for a
// directory, FIFO, socket or device (at once, never blocking), an empty
// (0-byte) file, an unknown extension, a file that is
// not an image, a corrupt or truncated one, an unsupported shape or dtype,
// or an image file other than an uncompressed TIFF when cpipc has no image
// codecs (built without OpenCV, or libcpipc_codecs.so not found);
// Error(out_of_memory) when the decoded pages (sized from the header, see
// probe_image) need more than util::available_memory(), before decoding;
// Error(io) when the file cannot be opened.
// Each message is one line that names the file and, where there is one, the
// fix.
[[nodiscard]] std::vector<Array> read_frames(const std::string& path);

}  // namespace cpipc::io
