// What a TIFF's first ImageDescription says about the axes of its pages, in
// the three conventions tifffile reads: ImageJ, OME-XML and tifffile's own
// shaped JSON. Pure text parsing, no file access.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cpipc::io::detail {

// The axes the description gives to the pages before the page axes,
// slowest first: letters and counts, e.g. "TZC" [2, 5, 3]; the pages they
// cover is the product of the counts.
struct PageAxes {
  std::string letters;
  std::vector<std::uint64_t> counts;
  [[nodiscard]] std::uint64_t pages() const noexcept;
};

// "ImageJ=..." lines: channels=, slices=, frames= (C fastest, then Z, then
// T); `samples` is the page's samples per pixel (an RGB ImageJ file counts
// its samples as channels). nullopt when not ImageJ.
[[nodiscard]] std::optional<PageAxes> imagej_axes(std::string_view description, std::uint64_t samples);

// The images= count of an ImageJ description; nullopt when not ImageJ or
// absent.
[[nodiscard]] std::optional<std::uint64_t> imagej_images(std::string_view description);

// The first OME Image's Pixels: DimensionOrder, SizeC, SizeZ, SizeT (SizeC
// counts samples where pages hold several). nullopt when not OME-XML.
[[nodiscard]] std::optional<PageAxes> ome_axes(std::string_view description, std::uint64_t samples);

// tifffile's {"shape": [...], "axes": "..."}: the whole series' shape and
// its letters (tifffile's, mapped to T Z C S Y X or Q; all Q without
// "axes"). nullopt when the description is not that.
struct ShapedAxes {
  std::vector<std::uint64_t> shape;
  std::string letters;
};
[[nodiscard]] std::optional<ShapedAxes> shaped_axes(std::string_view description);

}  // namespace cpipc::io::detail
