// Cellpose's own command-line flags where they name a cpipc setting another
// way (--chan/--chan2 for --channels, --use_gpu for --device, ...), so that a
// Cellpose command line runs under `cpipc segment` as it is. They are not
// listed in --help (kCellposeGroup). A Cellpose flag that only spells a cpipc
// option differently (--flow_threshold) is that option's second name instead.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

namespace cpipc::cli {

struct CellposeFlags {
  std::optional<int> chan;        // --chan: channel to segment, 0 = gray
  std::optional<int> chan2;       // --chan2: nuclear channel, 0 = none
  bool use_gpu = false;           // --use_gpu: --device cuda
  std::optional<int> gpu_device;  // --gpu_device N: cuda:N with --use_gpu
  bool save_txt = false;          // accepted: <stem>_cp_outlines.txt is written unless --no-outlines
  bool verbose = false;           // accepted: cpipc reports every image anyway
};

// Registers Cellpose's flags on `cmd`, which must already have --channels,
// --device and --no-outlines (the flags that contradict them are refused
// together). --image_path adds to `images`.
void add_cellpose_flags(CLI::App& cmd, CellposeFlags& flags, std::vector<std::string>& images);

// The cpipc settings the given flags stand for.
void apply_cellpose_flags(const CellposeFlags& flags, std::string& channels, std::string& device);

}  // namespace cpipc::cli
