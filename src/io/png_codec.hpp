// PNG through libpng, in every build: the exact stored samples in, a
// compressed PNG out, the same with or without OpenCV.
#pragma once

#include <string>
#include <vector>

#include "cpipc/io/array.hpp"
#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io::detail {

// The samples of the PNG at `path` as stored, C-contiguous, native byte
// order: [H, W] gray, [H, W, 2] gray+alpha, [H, W, 3] RGB, [H, W, 4] RGBA;
// uint8 (1-, 2- and 4-bit gray unpacked, unscaled: 0..2^bits-1) or uint16.
// A palette image is expanded to RGB (RGBA with a tRNS chunk); a gray or RGB
// image's tRNS (one colour marked transparent) is ignored: the samples are
// what is stored. No gamma or other transform; Adam7 interlacing is undone. The file is opened as RegularFile does (a
// FIFO or device is refused at once). Throws Error(not_found) for a missing file; Error(invalid_argument), one line
// "cannot read 'PATH': corrupt or truncated PNG (<libpng's reason>)"; Error(out_of_memory) before decoding what does
// not fit (check_decoded_size); Error(io) when the file cannot be read.
[[nodiscard]] Array read_png(const std::string& path);

// `view` as a PNG file's bytes: [H, W] or [H, W, 1] gray, [H, W, 2]
// gray+alpha, [H, W, 3] RGB, [H, W, 4] RGBA of uint8 (bool as uint8) or
// uint16; a gray image of 32- or 64-bit integer labels is narrowed to uint16
// when every value fits (labels_as_uint16).
// Throws Error(invalid_argument), one line without a path (the caller adds
// it), for another shape or dtype, labels that do not fit 16 bits, an empty
// or non-contiguous view.
[[nodiscard]] std::vector<unsigned char> encode_png(const ipc::HostView& view);

}  // namespace cpipc::io::detail
