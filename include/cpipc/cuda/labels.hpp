// Label images on the device, as a producer publishes them.
#pragma once

#include "cpipc/cuda/stream_view.hpp"

#include <cstddef>
#include <cstdint>

namespace cpipc::cuda {

// Writes `n` int32 labels (values 0..count, read as uint32) from `src` into
// `dst` as uint16 (`bits` 16, every label < 65 536) or uint32 (`bits` 32),
// on `stream`, asynchronously. Throws Error(system) for a
// CUDA failure, Error(invalid_argument) for other bits.
void write_labels(const std::int32_t* src, void* dst, std::size_t n, int bits, StreamView stream);

}  // namespace cpipc::cuda
