// Cellpose's per-image eval options (normalisation, edges, resampling,
// augmentation), shared by segment (applied here) and submit (sent to serve).
#pragma once

#include <CLI/CLI.hpp>

#include <array>
#include <optional>
#include <vector>

#include "cpipc/error.hpp"

namespace cpipc::cli {

struct ImageFlags {
  bool invert = false;
  bool no_norm = false;
  std::vector<float> norm_percentile;  // LOW HIGH, empty: Cellpose's 1 99
  bool exclude_on_edges = false;
  bool no_resample = false;
  bool augment = false;

  // The percentiles asked for, or none; throws Error when LOW >= HIGH.
  std::optional<std::array<float, 2>> percentiles() const {
    if (norm_percentile.empty()) return std::nullopt;
    if (!(norm_percentile[0] < norm_percentile[1])) {
      throw Error(Errc::invalid_argument, "--norm-percentile LOW HIGH needs LOW < HIGH (Cellpose's default: 1 99)");
    }
    return std::array<float, 2>{norm_percentile[0], norm_percentile[1]};
  }
};

inline void add_image_options(CLI::App& cmd, ImageFlags& f) {
  cmd.add_flag("--invert", f.invert, "Invert intensities after normalisation");
  CLI::Option* no_norm =
      cmd.add_flag("--no-norm,--no_norm", f.no_norm, "Do not normalise: the image goes to the network as it is");
  cmd.add_option("--norm-percentile,--norm_percentile", f.norm_percentile,
                 "Normalise each channel between these percentiles instead of 1 and 99")
      ->expected(2)
      ->option_text("LOW HIGH")
      ->check(CLI::Range(0.0, 100.0))
      ->excludes(no_norm);
  cmd.add_flag("--exclude-on-edges,--exclude_on_edges", f.exclude_on_edges,
               "Discard masks that touch the image's border; the rest are renumbered (a z-stack: per plane)");
  cmd.add_flag("--no-resample,--no_resample", f.no_resample,
               "Run the dynamics at the network's rescaled size and resize the masks back (faster for large cells)");
  cmd.add_flag("--augment", f.augment,
               "Cellpose's test-time augmentation: half-overlapping tiles, flipped, averaged (about 4x the work)");
}

}  // namespace cpipc::cli
