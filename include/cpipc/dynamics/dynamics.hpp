// Cellpose's dynamics: the network's flows to label masks, and label masks
// to flows (for the flow-error quality control and training targets). The
// order of operations and the defaults are Cellpose 4's (see
// shared/CELLPOSE.md); this is our own implementation, multi-threaded on
// the CPU (OpenMP). Images are 2-D or 3-D
// stacks ([Z, Y, X]), row-major.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace cpipc::dynamics {

// Cellpose's parameters, with its defaults.
struct Params {
  float cellprob_threshold = 0.0f;  // foreground: cellprob > this
  float flow_threshold = 0.4f;      // flow-error QC; 0 turns it off
  int min_size = 15;                // smaller masks are removed; <= 0 keeps all
  float max_size_fraction = 0.4f;   // masks over this fraction of the image are removed
  int niter = 200;                  // Euler steps of flow following
};

// Read-only flows from the network: dY, dX and the cellprob logit, each
// height x width float32 (Cellpose's y[0], y[1], y[2]; flows are ~5x unit).
struct Flows {
  std::span<const float> dy;
  std::span<const float> dx;
  std::span<const float> cellprob;
  int height = 0;
  int width = 0;
};

// Label image: 0 background, 1..count objects, consecutive, numbered in
// order of first appearance in raster order.
struct Labels {
  int height = 0;
  int width = 0;
  std::uint32_t count = 0;
  std::vector<std::uint32_t> data;

  // Cellpose's dtype rule: uint16 below 65 536 labels, uint32 from there.
  [[nodiscard]] bool fits_uint16() const noexcept { return count < 65536; }
};

// Unit flows computed from labels: (dY, dX) per pixel, 0 outside masks.
struct UnitFlows {
  int height = 0;
  int width = 0;
  std::vector<float> dy;
  std::vector<float> dx;
};

// Flows to masks, end to end, as Cellpose's compute_masks followed by
// fill_holes_and_remove_small_masks: foreground, flow following, seeds and
// their growth, the large-mask cut, flow-error QC, min_size and hole filling,
// renumbering. Throws Error(invalid_argument) for mismatched sizes, NaN or
// infinite flows, or bad parameters. An image without foreground gives an
// all-zero result.
[[nodiscard]] Labels masks_from_flows(const Flows& flows, const Params& params = {});

// Masks to unit flows by heat diffusion from each mask's centre (Cellpose
// 4's masks_to_flows: 2 * max(h + w + 2) iterations, float64, normalised).
[[nodiscard]] UnitFlows flows_from_masks(const Labels& labels);

// --- 3-D -------------------------------------------------------------------

// Read-only flows of a [Z, Y, X] stack from the network: dZ, dY, dX and the
// cellprob logit, each depth x height x width float32, row-major (Cellpose's
// do_3D flows; ~5x unit).
struct Flows3D {
  std::span<const float> dz, dy, dx, cellprob;
  int depth = 0, height = 0, width = 0;
};

// Label stack: [Z, Y, X], 0 background, 1..count numbered in order of first
// appearance in raster order.
struct Labels3D {
  int depth = 0, height = 0, width = 0;
  std::uint32_t count = 0;
  std::vector<std::uint32_t> data;
  [[nodiscard]] bool fits_uint16() const noexcept { return count < 65536; }
};

// Flows to masks in 3-D, as Cellpose's compute_masks(do_3D=True) followed
// by fill_holes_and_remove_small_masks: foreground, trilinear flow
// following, seeds (5 x 5 x 5 maxima) and their growth (11 x 11 x 11), the
// large-mask cut, min_size, holes filled in 3-D (6-connected background, as
// fill_voids), renumbering. params.flow_threshold is ignored: Cellpose has
// no flow-error QC in 3-D. Throws Error(invalid_argument) for mismatched
// sizes, NaN or infinite flows, or bad parameters. A stack without
// foreground gives an all-zero result.
[[nodiscard]] Labels3D masks_from_flows_3d(const Flows3D& flows, const Params& params = {});

// --- The steps, exposed for tests and benchmarks ---------------------------

// Final integer positions (y, x) after `niter` Euler steps of every
// foreground pixel (listed in `pixels` as flat indices, raster order).
struct Positions {
  std::vector<std::int32_t> y;
  std::vector<std::int32_t> x;
};
[[nodiscard]] Positions follow_flows(const Flows& flows, std::span<const std::int64_t> pixels, float cellprob_threshold,
                                     int niter);

// Cellpose 3's flow following without interpolation (follow_flows with
// interp=False, its steps2D), which its size model uses: each step adds the
// field (dP * foreground / 5) at the truncated current position, in float32,
// clamped to the image; final positions truncated.
[[nodiscard]] Positions follow_flows_nearest(const Flows& flows, std::span<const std::int64_t> pixels,
                                             float cellprob_threshold, int niter);

// Labels from the final positions: histogram, seeds, seed growth, each pixel
// takes the label at its final position, large masks removed, renumbered.
[[nodiscard]] Labels masks_from_positions(const Positions& positions, std::span<const std::int64_t> pixels, int height,
                                          int width, float max_size_fraction);

// Flow-error QC: removes masks whose mean squared error between their unit
// flows and the network's flows / 5 exceeds `threshold`; renumbers.
void remove_bad_flow_masks(Labels& labels, const Flows& flows, float threshold);

// Per-mask mean flow error (index label-1), as Cellpose's flow_error.
[[nodiscard]] std::vector<double> flow_errors(const Labels& labels, const Flows& flows);

// Removes masks smaller than min_size, fills holes per mask, removes small
// masks again, renumbers.
void fill_holes_and_remove_small_masks(Labels& labels, int min_size);

// Renumbers labels to 1..N in order of first appearance; updates count.
void renumber(Labels& labels);

}  // namespace cpipc::dynamics
