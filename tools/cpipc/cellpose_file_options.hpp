// The flags that choose Cellpose's output files, in cpipc's spelling and in
// Cellpose's (--save_rois, ...), for `cpipc segment`.
#pragma once

#include <CLI/CLI.hpp>

#include "cpipc/io/outputs.hpp"

namespace cpipc::cli {

inline void add_cellpose_file_options(CLI::App& cmd, io::CellposeFiles& files, bool& save_png) {
  cmd.add_flag("!--no-npy,!--no_npy", files.seg_npy,
               "Do not write <stem>_seg.npy (Cellpose's GUI file: masks, outlines, flows; written by default)");
  cmd.add_flag("--save-rois,--save_rois", files.rois, "Also write <stem>_rois.zip, ImageJ ROIs, one per mask");
  cmd.add_flag("--save-tif,--save_tif", files.tif,
               "Write the masks as <stem>_cp_masks.tif (Deflate); without --save-png, instead of the PNG");
  cmd.add_flag("--save-png,--save_png", save_png, "Write the masks as <stem>_cp_masks.png (the default)");
  cmd.add_flag("--save-outlines,--save_outlines", files.outlines_png,
               "Also write <stem>_outlines_cp_masks.png, the outlines in red over the image");
}

}  // namespace cpipc::cli
