// Images as microscopists store them: the exact stored values with named
// axes. cpipc's order for one image is [Z,] Y, X [, C]; time points (T) are
// frames, one after another.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::io {

// Axes the user names, as Cellpose's --channel_axis / --z_axis: indices into
// the array as stored (tifffile's series shape with size-1 axes removed,
// what Cellpose's io.imread returns), negative counting from the end.
// A named axis wins over the file's metadata, which wins over guessing.
struct AxisOptions {
  std::optional<int> channel_axis;
  std::optional<int> z_axis;

  [[nodiscard]] bool empty() const noexcept { return !channel_axis && !z_axis; }
};

// An image file's array as stored, before it is put in cpipc's order: for a
// TIFF, its pages reshaped by the file's metadata (tifffile's series), with
// size-1 axes removed (but never Y or X).
struct StoredImage {
  // Its own shape, not an ipc::TensorDesc: a stored array can have more
  // axes than a segment (ImageJ's TZCYX has five).
  ipc::DType dtype{ipc::DTypeCode::uint, 8, 1};
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;  // C-contiguous, in stored order, native byte order
  // One letter per axis of `shape`: T (time), Z, C (channel), S (sample: a
  // channel stored inside the page), Y, X where the file says so; Q where it
  // does not (a plain multi-page TIFF, a .npy).
  std::string axes;
  // Where the letters came from: "ImageJ", "OME", "tifffile", "PNG", ... or
  // "" when nothing named them.
  std::string source;
};

// One time point in cpipc's order.
struct Image {
  Array array;       // [Z,] Y, X [, C]
  std::string axes;  // "YX", "YXC", "ZYX" or "ZYXC"
};

struct ImageFile {
  std::vector<Image> frames;  // one per time point (and per series whose pages differ in shape)
  std::string stored_axes;    // the stored axes with the letters decided ("TZCYX", "CYX")
  // How the axes were decided, for messages and --json: "ImageJ metadata",
  // "OME-XML", "tifffile metadata", "--channel-axis", "guessed as Cellpose 4
  // does", "fixed by the format".
  std::string decided_by;
};

// Puts `stored` into cpipc's order: axes the user named first, then the
// file's letters, then Cellpose 4's guess (transforms.convert_image) for
// what is left: 3 axes -> channels first when shape[0] < shape[-1], else
// last; 4 axes -> Z first, channels at 1 when shape[1] < shape[-1], else 3.
// T becomes frames. Pure: no file is touched.
// Throws Error(invalid_argument), one line naming `path`, for axes that
// contradict each other, an axis out of range, or more than Z, Y, X and C
// (plus T) dimensions.
[[nodiscard]] ImageFile arrange_axes(StoredImage stored, const AxisOptions& options, const std::string& path);

// Reads every image in `path` (.tif/.tiff through libtiff, .png, .jpg,
// .bmp, .npy) as its exact stored values in cpipc's order. Refuses (Error
// invalid_argument, exit 2, one line naming what) what cannot be returned
// exactly: complex samples, 1-bit or 12-bit packed pixels, a compression
// this libtiff lacks. Error(out_of_memory) before decoding when it does not
// fit; Error(not_found) for a missing file.
[[nodiscard]] ImageFile read_image_file(const std::string& path, const AxisOptions& options = {});

}  // namespace cpipc::io
