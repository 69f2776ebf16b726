// Segmentation results saved under Cellpose's names, so that tools made for
// Cellpose's output (its GUI, ImageJ's outline macro, scripts) read ours.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io {

// "<dir>/<stem>_cp_masks.png", or "<dir>/<stem>_cp_masks.tif" when there are
// 65536 masks or more (a PNG holds 16 bits; Cellpose's save_masks switches
// on masks.max() >= 2**16, which for renumbered masks is count >= 65536).
[[nodiscard]] std::string masks_output_path(const std::string& dir, const std::string& stem, std::uint32_t count);

// "<dir>/<stem>_cp_outlines.txt".
[[nodiscard]] std::string outlines_output_path(const std::string& dir, const std::string& stem);

// Saves a label image as Cellpose's `save_masks(..., png=True,
// save_txt=outlines)` does: the masks as a uint16 PNG (count < 65536) or an
// uncompressed uint32 TIFF (count >= 65536, as Cellpose switches), and, if
// `outlines`, the outlines text (see outline_polygons). `labels` is a
// C-contiguous [H, W] view of unsigned or non-negative signed integers, at
// most `count`. Creates `dir` (and its parents) when missing. Unlike
// Cellpose, which saves nothing for an image with no masks, count == 0 still
// writes an all-zero mask PNG and an empty outlines file, so that every
// input has its outputs. Returns the paths written, masks first.
// Needs no image codecs: without OpenCV the PNG is written uncompressed and
// the outlines are traced the same.
// Throws Error(invalid_argument) for a bad view or labels above `count`;
// Error(io) when `dir` cannot be created or a file cannot be written.
std::vector<std::string> save_cellpose_outputs(const std::string& dir, const std::string& stem,
                                               const ipc::HostView& labels, std::uint32_t count, bool outlines);

}  // namespace cpipc::io
