// Mask outlines as pixels, and the picture a person looks at: the source
// image in 8-bit RGB with the outlines painted on it, as Cellpose saves it.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace cpipc::post {

using Rgb = std::array<std::uint8_t, 3>;

inline constexpr Rgb kOutlineRed{255, 0, 0};  // Cellpose's outline colour

// 1 where a pixel is on the outline of its mask, 0 elsewhere (height x
// width, row-major), exactly Cellpose's utils.masks_to_outlines: the pixels
// cv::findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE) traces around each
// label. Stated per pixel: a pixel of label L > 0 is an outline pixel when
// one of its 4 neighbours is outside the image, or is not L and is joined
// to the outside of the image by a 4-connected path of pixels that are not
// L. So the border between two touching masks is drawn on both sides, the
// rims of holes are not drawn, and neither is anything of L lying inside a
// hole of L. Costs the sum of the labels' bounding-box areas.
// Throws Error(invalid_argument) for a negative size or null labels with pixels.
[[nodiscard]] std::vector<std::uint8_t> outline_mask(const std::uint32_t* labels, int height, int width);

// `image` (height x width x channels, channels last, interleaved) as an
// 8-bit RGB picture (height x width x 3), each channel scaled as Cellpose's
// plot.image_to_rgb does: value v maps to uint8(255 * clip((v - p1) / (p99 -
// p1), 0, 1)), with p1 and p99 that channel's 1st and 99th percentiles
// (numpy's linear interpolation, to the bit), in float32 arithmetic as
// Cellpose's save_masks(..., save_outlines=True) does it; a channel whose
// p99 - p1 <= 1e-3 (a constant one, say) is black, as there; NaN pixels are
// left out of the percentiles and shown black. One channel is gray (copied
// to R, G and B); two channels go to R and G (B black); three or more to R,
// G, B (a fourth, alpha, and any further are dropped). Throws
// Error(invalid_argument) for a negative size, channels < 1 or a null image
// with pixels.
[[nodiscard]] std::vector<std::uint8_t> display_rgb(const float* image, int height, int width, int channels);

// Paints the pixels where `outlines` (height x width) is non-zero in
// `colour`, into `rgb` (height x width x 3).
void paint(std::uint8_t* rgb, const std::uint8_t* outlines, int height, int width, Rgb colour) noexcept;

// The outlines of `labels` drawn over `image` (display_rgb), or over black
// when `image` is null: height x width x 3 RGB bytes. What Cellpose's
// save_masks(..., save_outlines=True) saves for a gray image, and what
// `cpipc outlines` writes. Throws as outline_mask and display_rgb do.
[[nodiscard]] std::vector<std::uint8_t> draw_outlines(const std::uint32_t* labels, int height, int width,
                                                      const float* image = nullptr, int channels = 1,
                                                      Rgb colour = kOutlineRed);

// What draw_outlines draws, from outline pixels already found (by
// outline_mask, or on the GPU): `image` (or black) with them in `colour`.
[[nodiscard]] std::vector<std::uint8_t> outlines_picture(const std::uint8_t* outlines, int height, int width,
                                                         const float* image = nullptr, int channels = 1,
                                                         Rgb colour = kOutlineRed);

}  // namespace cpipc::post
