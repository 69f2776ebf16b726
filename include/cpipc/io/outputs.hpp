// Segmentation results saved under Cellpose's names, so that tools made for
// Cellpose's output (its GUI, ImageJ's outline macro, scripts) read ours.
#pragma once

#include <array>
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

// Which of Cellpose's files to write for a 2-D image; its CLI's flags in
// brackets. The defaults are cpipc's: masks PNG and outlines text.
struct CellposeFiles {
  bool png = true;            // <stem>_cp_masks.png, a TIFF from 65536 masks [--save_png]
  bool tif = false;           // <stem>_cp_masks.tif, Deflate, uint16 or uint32 [--save_tif]
  bool outlines_txt = true;   // <stem>_cp_outlines.txt [--save_txt]
  bool rois = false;          // <stem>_rois.zip, ImageJ ROIs (imagej_rois.hpp) [--save_rois]
  bool outlines_png = false;  // <stem>_outlines_cp_masks.png, the outlines over the image [--save_outlines]
  bool seg_npy = false;       // <stem>_seg.npy (seg_npy.hpp) [Cellpose's CLI writes it unless --no_npy]
};

// What the files beyond the masks are made from.
struct CellposeFileInputs {
  const float* flows = nullptr;  // [3, H, W] dY, dX, cellprob: needed by seg_npy
  const float* image = nullptr;  // [H, W, channels] float32, channels last: outlines_png (else drawn on black)
  int image_channels = 1;
  std::string image_path;  // seg_npy's "filename"
  double diameter = 0.0;   // seg_npy's "diameter"
  std::array<int, 2> chan_choose{0, 0};
};

// The paths written, empty for files not asked for.
struct SavedFiles {
  std::string masks_png;
  std::string masks_tif;
  std::string outlines_txt;
  std::string rois;
  std::string outlines_png;
  std::string seg_npy;
  // The masks file: the PNG, else the TIFF.
  [[nodiscard]] const std::string& masks() const noexcept { return masks_png.empty() ? masks_tif : masks_png; }
};

// save_cellpose_outputs with the choice of files of Cellpose's CLI. With
// neither png nor tif the masks are saved as PNG, so that every image has
// its masks file; png with 65536 masks or more becomes the TIFF, once.
// Like Cellpose, png and tif are exclusive only by choice: both write both.
// Unlike Cellpose, an image with no masks still gets every file asked for
// (Cellpose then writes only the .npy, the ROI archive, empty, and a TIFF).
// Throws as save_cellpose_outputs, write_seg_npy and write_imagej_rois do;
// Error(invalid_argument) for seg_npy without flows.
SavedFiles save_cellpose_files(const std::string& dir, const std::string& stem, const ipc::HostView& labels,
                               std::uint32_t count, const CellposeFiles& files, const CellposeFileInputs& inputs);

}  // namespace cpipc::io
