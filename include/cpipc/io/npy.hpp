// NumPy .npy files (format versions 1-3), written from scratch to the spec.
#pragma once

#include <string>

#include "cpipc/io/array.hpp"

namespace cpipc::io {

// Reads a C-ordered .npy of a supported dtype with at most 4 dimensions.
// Throws Error(not_found) for a missing file, Error(invalid_argument) for a
// malformed or unsupported one (Fortran order, object arrays, > 4-D).
[[nodiscard]] Array read_npy(const std::string& path);

// Writes `view` (C-contiguous) as a version 1.0 .npy. Throws Error(io).
void write_npy(const std::string& path, const ipc::HostView& view);

}  // namespace cpipc::io
