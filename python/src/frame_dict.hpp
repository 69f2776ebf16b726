// Frames and segment snapshots as Python dicts (the fields of `cpipc info --json`).
#pragma once

#include <nanobind/nanobind.h>

#include <cstddef>
#include <vector>

#include "cpipc/ipc/reader.hpp"

namespace cpipc::python {

namespace nb = nanobind;

// frame_id, slot, seq, publish_unix_ns, publish_monotonic_ns, object_count,
// diameter, meta (the raw bytes: they are untrusted, cpipc/segment.py decodes them).
[[nodiscard]] nb::dict frame_dict(const ipc::FrameInfo& info);
// The header and live counters, with "latest" as a frame_dict or None.
[[nodiscard]] nb::dict status_dict(const std::string& name, const ipc::SegmentStatus& status);
// Hands `bytes` to numpy without a copy: a 1-D uint8 array that owns them.
[[nodiscard]] nb::object owned_bytes(std::vector<std::byte>&& bytes);

}  // namespace cpipc::python
