// 3-D masks from 2-D ones, as Cellpose's eval does with stitch_threshold > 0:
// each z plane is segmented on its own (min_size -1), the planes' labels
// are stitched into 3-D objects by IoU (utils.stitch3D), then holes are
// filled and small objects removed in 3-D (utils.fill_holes_and_remove_
// small_masks on the [Z, Y, X] volume). Volumes are [depth, height, width],
// row-major. Our own code; the rules matched are stated per function.
#pragma once

#include <cstdint>
#include <span>

namespace cpipc::dynamics {

// Cellpose's utils.stitch3D: labels [depth, height, width] in place, each
// plane's labels any uint32 (0 background); on return 3-D ids, numbered as
// Cellpose returns them. Returns the object count (distinct non-zero ids).
//
// Plane by plane from z = 1: the IoU of each label r of this plane with
// each (already stitched) id c of the previous plane; IoUs below
// `stitch_threshold` count as 0, and so does any IoU below the largest
// one in its column c; r takes the c of its largest remaining IoU (the
// smallest c on a tie), or, when none is left above 0, a new id: the
// next after the largest id so far, new ids given in increasing order of r.
// Cellpose's details kept: every value 1..max(r) of a plane takes a new id
// when unmatched, present or not (gaps in a plane's labels leave gaps in
// the ids); two labels of a plane may take the same id; a plane next to an
// empty one keeps its labels as they are while no two non-empty planes have
// met yet (they can then repeat ids of earlier planes), and after that
// takes new ids (label r -> largest id + r).
// `stitch_threshold` is compared as the double its shortest decimal form
// reads as (0.1f as 0.1), as Cellpose compares a Python float. Ids are
// uint32 throughout, as Cellpose 4 (which turns uint16 masks into uint32
// when the ids would pass 65 535; Cellpose 3.1.1.2 keeps the planes' dtype).
// Throws Error(invalid_argument) when labels.size() != depth * height *
// width, a size is negative, or the ids would pass 2^32 - 1.
std::uint32_t stitch_planes(std::span<std::uint32_t> labels, int depth, int height, int width, float stitch_threshold);

// Cellpose's fill_holes_and_remove_small_masks on a [depth, height, width]
// label volume (what Cellpose does for 3-D input), renumbered; returns the
// count (distinct non-zero labels).
//
// With min_size > 0, labels with fewer than min_size voxels are removed and
// the rest renumbered 1..N in order of first appearance (fastremap.renumber).
// Then, for each label in increasing order, the holes of its mask in its
// bounding box (as before any filling) are filled in 3-D, as fill_voids.fill
// does: voxels not of the label that 6-connected flood fill from fill_voids'
// seeds on the box's six faces cannot reach; the mask and what it encloses,
// other labels' voxels included, become label j, the label's rank (1, 2, ...).
// With min_size > 0, small labels are removed again and the rest renumbered
// in order of first appearance. (With min_size <= 0 the result is numbered
// by rank, which leaves a gap where a label was swallowed whole.)
// The removals go by label value, as Cellpose 4 does; Cellpose 3.1.1.2 went
// by position among the labels present, which differs only when the
// labels entering a removal have gaps (or no voxel is background). As
// Cellpose 4, the smallest value present is taken as the background, so
// where no voxel is 0 the smallest label is never removed.
// Throws Error(invalid_argument) when labels.size() != depth * height *
// width or a size is negative.
std::uint32_t fill_holes_and_remove_small_masks_3d(std::span<std::uint32_t> labels, int depth, int height, int width,
                                                   int min_size);

}  // namespace cpipc::dynamics
