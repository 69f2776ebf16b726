// Per-object stats on the GPU, from a label image already on the device (a
// device view, or masks uploaded once): the CUDA twin of post::object_stats,
// equal to it to the bit (integer sums, and intensity sums added in raster
// order per object). No CUDA types here: pointers are device pointers and
// the stream a cudaStream_t: nullptr (the default stream) or one created
// without cudaStreamNonBlocking, since Thrust fills its scratch on the
// default stream.
#pragma once

#include <vector>

#include "cpipc/cuda/stream_view.hpp"
#include "cpipc/ipc/tensor.hpp"
#include "cpipc/post/stats.hpp"

namespace cpipc::cuda {

// `labels`: height x width of uint16 or uint32 (`dtype`) on the current
// device; `intensity`: null, or height x width x channels float32 on the
// device. Throws Error(invalid_argument) for another dtype or a bad size,
// Error(system) / Error(out_of_memory) for CUDA failures.
[[nodiscard]] std::vector<post::ObjectStats> object_stats(const void* labels, ipc::DType dtype, int height, int width,
                                                          const float* intensity, int channels, StreamView stream);

// The same with `intensity` (or null) in host memory, uploaded here: what a
// device-view consumer with the source image from a file calls.
[[nodiscard]] std::vector<post::ObjectStats> object_stats_of_device_labels(const void* labels, ipc::DType dtype,
                                                                           int height, int width,
                                                                           const float* intensity, int channels,
                                                                           StreamView stream);

// The same from host memory: uploads `labels` (uint32) and `intensity` to
// device `ordinal`, measures there, and frees what it uploaded.
[[nodiscard]] std::vector<post::ObjectStats> object_stats_from_host(const std::uint32_t* labels, int height, int width,
                                                                    const float* intensity, int channels, int ordinal);

// post::outline_mask on the GPU, from `labels` (uint16 or uint32, height x
// width) on the current device, ordered on `stream`; the mask comes back to
// the host. The same pixels (one block per object floods its padded box).
[[nodiscard]] std::vector<std::uint8_t> outline_mask(const void* labels, ipc::DType dtype, int height, int width,
                                                     StreamView stream);

// The same from host labels (uint32), uploaded to device `ordinal`.
[[nodiscard]] std::vector<std::uint8_t> outline_mask_from_host(const std::uint32_t* labels, int height, int width,
                                                               int ordinal);

}  // namespace cpipc::cuda
