// TIFF writing through libtiff: every dtype a segment can hold, Deflate, one
// page per (z, c) plane, with the description Fiji (ImageJ) or tifffile
// needs to give the pages their axes back.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io::detail {

// Writes `view` (any strides), whose axes in cpipc's order are `axes`:
// "YX", "YXC", "ZYX", "ZYXC", optionally with a leading T; or "YXS", "ZYXS"
// (after an optional T) for an RGB picture: uint8, 3 interleaved samples,
// one RGB page per plane. Pages are
// written in ImageJ's order (C fastest, then Z, then T), each Deflate
// compressed, into memory and then atomically to `path` (write_replacing),
// BigTIFF past 4 GiB. uint8, uint16 and float32 stacks get an ImageJ
// hyperstack description; other dtypes, and a plain 2-D image, tifffile's
// {"shape": [...], "axes": "..."}.
// Throws Error(invalid_argument) for axes that do not fit the view or a
// dtype TIFF cannot say (bool, bfloat16, vectors), Error(io) when the
// write fails.
void write_tiff(const std::string& path, const ipc::HostView& view, std::string_view axes);

// `labels` (height x width, row-major) as a uint32 TIFF, through write_tiff.
void write_uint32_tiff(const std::string& path, std::span<const std::uint32_t> labels, std::uint32_t height,
                       std::uint32_t width);

}  // namespace cpipc::io::detail
