// TIFF files with named axes: what Fiji, napari and Cellpose open as the
// stack or hyperstack it is.
#pragma once

#include <string>
#include <string_view>

#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io {

// Writes `view` (C-contiguous) as a Deflate-compressed TIFF, one page per
// plane and channel, with ImageJ's description naming `axes`, cpipc's order
// of the view: "YX", "YXC", "ZYX" or "ZYXC"; or "YXS" / "ZYXS" for an RGB
// picture (uint8, 3 interleaved samples: RGB pages, which Fiji shows in
// colour, a stack as RGB slices). Every dtype a segment holds
// (uint32 labels above 65 535 included). Atomic and checked as write_array:
// the old file stays when anything fails. Throws Error(invalid_argument)
// for axes that do not match the view or a dtype TIFF cannot hold,
// Error(io) when writing fails.
void write_tiff(const std::string& path, const ipc::HostView& view, std::string_view axes);

}  // namespace cpipc::io
