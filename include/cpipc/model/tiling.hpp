// The geometry of Cellpose's run_net: rescaled size, padding, overlapping
// tiles and the taper blend weights (shared/CELLPOSE.md, "Eval pipeline").
// Torch-free so that it is tested on its own.
#pragma once

#include <cstdint>
#include <vector>

namespace cpipc::model {

// Cellpose's rescaled length int(L * rescale), computed in float32 as numpy
// does with a float32 diameter.
[[nodiscard]] std::int64_t rescaled_length(std::int64_t length, float rescale) noexcept;
// The same in float64, as numpy computes it with an estimated (float64) diameter.
[[nodiscard]] std::int64_t rescaled_length(std::int64_t length, double rescale) noexcept;

// Zero padding to the next multiple of 16, plus 8 px each side; the odd
// pixel goes after.
struct Padding {
  std::int64_t before = 0;
  std::int64_t after = 0;
};
[[nodiscard]] Padding network_padding(std::int64_t length) noexcept;
// Cellpose 4 (get_pad_yx with min_size): a length below `min_size` is padded
// to min_size (at least 16 px added), others as above.
[[nodiscard]] Padding network_padding(std::int64_t length, std::int64_t min_size) noexcept;

// Tiles along one axis of the padded image: `size` = min(tile, length),
// starts as numpy.linspace(0, length - size, n).astype(int) with n = 1 if
// length <= tile, else ceil((1 + 2 overlap) length / tile); overlap is
// clipped to [0.05, 0.5].
struct TileAxis {
  std::int64_t size = 0;
  std::vector<std::int64_t> starts;
};
[[nodiscard]] TileAxis tile_axis(std::int64_t length, int tile, double overlap);

// Tiles with Cellpose's augment (make_tiles): half-overlapping tiles of
// `tile` (the length is at least `tile`: the image is zero-padded at its end
// first), n = max(2, ceil(2 length / tile)), starts as tile_axis's.
[[nodiscard]] TileAxis augmented_tile_axis(std::int64_t length, int tile);

// The 2-D taper weights for a tile of ly x lx: the outer product of
// 1 / (1 + exp((|x - c| - (B/2 - 20)) / 7.5)) with B = max(224, ly, lx),
// cropped to the centre. Row-major, float64 as Cellpose computes it.
[[nodiscard]] std::vector<double> taper_mask(std::int64_t ly, std::int64_t lx);

}  // namespace cpipc::model
