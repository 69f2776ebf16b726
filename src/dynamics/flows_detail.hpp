#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cpipc/dynamics/dynamics.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics::detail {

// Unit flows in float64, as Cellpose keeps them for the QC.
struct DoubleFlows {
  std::vector<double> dy;
  std::vector<double> dx;
};
DoubleFlows unit_flows(const Labels& labels);

// Per-mask mean flow error (index label-1), as Cellpose's flow_error, from
// the labels' bounding boxes; `temp` is scratch of height x width doubles
// (any contents).
std::vector<double> flow_errors(const Labels& labels, const Flows& flows, const std::vector<Box>& boxes, double* temp);

// Whether flow following runs its AVX2 kernels: where the CPU has AVX2,
// unless the environment sets CPIPC_NO_AVX2 (then the SSE2 kernels, which
// give the same positions bit for bit; for tests and comparisons). Read on
// each call.
bool use_avx2();

// Flow following into caller-provided memory: `field` holds
// 2 x (height + 2) x (width + 2) floats (any contents); the final positions go
// to out_y and out_x, or, when `bins` is given, straight to their bins in the
// padded histogram of masks_from_positions (kHistPad around the image).
void follow_flows(const Flows& f, std::span<const std::int64_t> pixels, float cellprob_threshold, int niter,
                  float* field, std::int32_t* out_y, std::int32_t* out_x, std::int32_t* bins);

// 3-D flow following: `field` holds 4 x (depth + 2) x (height + 2) x
// (width + 2) floats (any contents); the final positions go straight to
// their bins in the padded histogram of masks_from_bins_3d (kHistPad around
// the stack on every side). A voxel whose path has come back to an earlier
// position stops there (where it ends is then known); `ends` (3 floats a
// voxel: normalised x, y, z) and `stop_at_cycles` = false are for tests,
// which compare the end positions of both ways bit for bit.
void follow_flows_3d(const Flows3D& f, std::span<const std::int64_t> pixels, float cellprob_threshold, int niter,
                     float* field, std::int64_t* bins, float* ends = nullptr, bool stop_at_cycles = true);

// masks_from_positions from the final positions' bins (as follow_flows
// writes them); `hist` is scratch of (height + 2 kHistPad) x (width + 2
// kHistPad) int32 (any contents). Also gives the sizes and boxes.
Labels masks_from_bins(std::span<const std::int32_t> bin, std::span<const std::int64_t> pixels, int height, int width,
                       float max_size_fraction, std::int32_t* hist, Stats& stats);

// Drops masks whose flow error is over `threshold` (labels in first-appearance
// order, their stats given; `temp`: height x width doubles of scratch).
void remove_bad_flow_masks(Labels& labels, const Flows& flows, float threshold, Stats& stats, double* temp);

// fill_holes_and_remove_small_masks for labels in first-appearance order,
// their stats given.
void fill_holes_and_remove_small_masks(Labels& labels, int min_size, Stats& stats);

}  // namespace cpipc::dynamics::detail
