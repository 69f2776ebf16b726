// Frames and segment snapshots as Python dicts (the fields of `cpipc info --json`).
#pragma once

#include <nanobind/nanobind.h>

#include <cstddef>
#include <span>
#include <vector>

#include "cpipc/ipc/reader.hpp"

namespace cpipc::python {

namespace nb = nanobind;

// frame_id, slot, seq, publish_unix_ns, publish_monotonic_ns, object_count,
// diameter, meta (the raw bytes: they are untrusted, cpipc/segment.py decodes them).
[[nodiscard]] nb::dict frame_dict(const ipc::FrameInfo& info);
// The header and live counters, with "latest" as a frame_dict or None.
[[nodiscard]] nb::dict status_dict(const std::string& name, const ipc::SegmentStatus& status);
// A new 1-D uint8 numpy array of `n` bytes, not zero-filled, and its bytes
// (to copy a frame into with the GIL released; the array keeps them alive).
struct NewBytes {
  nb::object array;
  std::span<std::byte> bytes;
};
[[nodiscard]] NewBytes new_bytes(std::size_t n);

}  // namespace cpipc::python
