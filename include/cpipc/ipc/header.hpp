// Validation of an untrusted segment header (the fuzzed parser).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "cpipc/ipc/format.hpp"
#include "cpipc/ipc/process.hpp"
#include "cpipc/ipc/tensor.hpp"

namespace cpipc::ipc {

// What a producer exported for one slot's device buffer (export kind
// cuda_ipc): opaque CUDA handle bytes here, interpreted by module `cuda`.
struct SlotExport {
  std::array<std::uint8_t, format::kHandleBytes> mem_handle{};    // cudaIpcMemHandle_t
  std::uint64_t device_offset = 0;                                // the frame's offset in that allocation
  std::uint64_t device_bytes = 0;                                 // the allocation's size
  std::array<std::uint8_t, format::kHandleBytes> event_handle{};  // cudaIpcEventHandle_t
};

// The immutable part of a header, checked and copied out.
struct SegmentLayout {
  std::uint16_t abi_major = 0;
  std::uint16_t abi_minor = 0;
  std::uint64_t total_bytes = 0;
  std::uint32_t slot_count = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t data_stride = 0;
  TensorDesc desc;
  ProcessIdentity producer;
  std::uint64_t created_realtime_ns = 0;
  std::array<std::uint8_t, 16> device_uuid{};
  format::ExportKind export_kind = format::ExportKind::none;
  std::int32_t device_ordinal = -1;

  [[nodiscard]] std::uint64_t slot_offset(std::uint32_t slot) const noexcept {
    return data_offset + std::uint64_t{slot} * data_stride;
  }
};

// Checks every field of the header at the start of `object` (the whole
// mapped object, or as much of it as is available) against `object_bytes`,
// the object's size from fstat: magic, ABI version, sizes and offsets, dtype,
// shape x itemsize == frame bytes, strides in bounds, no overflow anywhere.
// Throws Error(corrupt) naming the first field that is wrong. Reads only the
// immutable fields; the live counters are not interpreted here.
[[nodiscard]] SegmentLayout parse_header(std::span<const std::byte> object, std::uint64_t object_bytes);

// Bytes of the object for a segment with these parameters (header + slots).
// Throws Error(invalid_argument) on overflow.
[[nodiscard]] std::uint64_t segment_bytes(const TensorDesc& desc, std::uint32_t slots);

// Data stride for a frame of `frame_bytes`: rounded up to a page, at least one page.
[[nodiscard]] std::uint64_t data_stride_for(std::uint64_t frame_bytes);

}  // namespace cpipc::ipc
