// TIFF through libtiff: every page decoded to its exact stored values, and
// the pages grouped into series as tifffile groups them.
#pragma once

#include <string>
#include <vector>

#include "cpipc/io/image.hpp"

namespace cpipc::io::detail {

// The series of the TIFF at `path`, each an Array of the stored values
// (native byte order, C-contiguous) in stored order, with one axis letter
// per dimension and size-1 axes removed except Y and X. Page axes are "YX",
// "YXS" (contiguous samples) or "SYX" (separate planes); the axes before
// them come from the first page's ImageJ or OME-XML description (the first
// series), tifffile's shaped JSON (any series), else consecutive pages of
// one shape and dtype make a series with a 'Q' axis.
// Throws Error(not_found) for a missing file; Error(invalid_argument), one
// line naming `path`, for a special file, a damaged TIFF or what cannot be
// returned exactly (complex samples, 1/12-bit samples, a codec this libtiff
// lacks, subsampled YCbCr without JPEG, mixed bit depths);
// Error(out_of_memory) before decoding when the pages do not fit.
[[nodiscard]] std::vector<StoredImage> read_tiff(const std::string& path);

}  // namespace cpipc::io::detail
