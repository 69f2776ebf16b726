// Cellpose's flows as the pictures its GUI shows (and keeps in _seg.npy):
// the flow field coloured by direction, the cell probability in 8 bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cpipc::post {

// Cellpose's plot.dx_to_circ([dy, dx]) for n pixels: n x 3 RGB bytes whose
// hue is the flow's direction and whose brightness is its length, scaled to
// the 1st-99th percentiles of the lengths (normalize99). Same float32
// arithmetic as numpy's; cos and atan2 are the C library's, which can differ
// from numpy's own float32 ones in the last bit, so a channel can be one
// level off on a rare pixel. NaN lengths are left out of the percentiles.
// Throws Error(invalid_argument) for null inputs with n > 0.
[[nodiscard]] std::vector<std::uint8_t> flow_picture(const float* dy, const float* dx, std::size_t n);

// uint8(255 * clip(normalize99(v), 0, 1)) for n values: Cellpose's cell
// probability as masks_flows_to_seg stores it (all 0 when the 1st and 99th
// percentiles are within 1e-3, as normalize99). Throws as flow_picture.
[[nodiscard]] std::vector<std::uint8_t> normalized_u8(const float* v, std::size_t n);

}  // namespace cpipc::post
