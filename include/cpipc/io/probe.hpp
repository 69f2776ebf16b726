// What an image file holds, from its header alone: the shape and type of
// each page without decoding a pixel, so that an image too large for this
// process is refused before its decoder allocates gigabytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpipc/ipc/tensor.hpp"

namespace cpipc::io {

// One decoded page as cpipc returns it ([H, W] or [H, W, C]).
struct ImagePage {
  std::uint64_t height = 0;
  std::uint64_t width = 0;
  std::uint64_t channels = 1;
  ipc::DType dtype{ipc::DTypeCode::uint, 8, 1};

  // height x width x channels x item size, saturating at UINT64_MAX.
  [[nodiscard]] std::uint64_t bytes() const noexcept;
};

struct ImageInfo {
  std::string format;  // "TIFF", "PNG", "JPEG", "BMP" or "NPY"
  // Every page (one but for TIFF); empty where the header does not say
  // (a JPEG whose frame header comes after the first 1 MiB).
  std::vector<ImagePage> pages;

  // What decoding every page needs, saturating.
  [[nodiscard]] std::uint64_t bytes() const noexcept;
};

// Reads the header of `path` (TIFF directories, PNG IHDR, JPEG SOF, BMP
// info header, .npy header), never its pixels. Files are opened as
// RegularFile does. Throws Error(not_found) for a missing file;
// Error(invalid_argument) for a special file, an empty file, one with no
// PNG/TIFF/JPEG/BMP/.npy signature, or a TIFF whose directories loop or are
// cut off; Error(io) when it cannot be read.
[[nodiscard]] ImageInfo probe_image(const std::string& path);

// Throws Error(out_of_memory) "cannot read 'PATH': decoding it needs N GiB,
// M GiB available; ..." when `bytes` exceed util::available_memory().
void check_decoded_size(const std::string& path, std::uint64_t bytes);

}  // namespace cpipc::io
