// The header of a .npy file, parsed alone: read_npy's first half, and what
// probe_image reports for a .npy without reading its data.
#pragma once

#include <cstdint>

#include "cpipc/io/array.hpp"
#include "cpipc/io/file.hpp"

namespace cpipc::io::detail {

struct NpyHeader {
  ipc::TensorDesc desc;
  std::uint64_t data_offset = 0;  // where the C-ordered data starts
};

// Throws Error(invalid_argument) for a malformed or unsupported header.
[[nodiscard]] NpyHeader read_npy_header(const RegularFile& file);

}  // namespace cpipc::io::detail
