// A baseline TIFF of uint32 labels: what OpenCV 4, which has no 32-bit
// unsigned type, cannot write, and Cellpose's masks from 65 536 objects on.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace cpipc::io::detail {

// Writes `labels` (height x width, row-major) as one uncompressed strip,
// SampleFormat unsigned, through write_file (atomic, checked). Throws
// Error(invalid_argument) past 4 GiB, Error(io) when the write fails.
void write_uint32_tiff(const std::string& path, std::span<const std::uint32_t> labels, std::uint32_t height,
                       std::uint32_t width);

}  // namespace cpipc::io::detail
