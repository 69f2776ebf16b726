#include "cpipc/ipc/header.hpp"

#include <cstring>
#include <string>

#include "cpipc/error.hpp"

namespace cpipc::ipc {

namespace {

[[noreturn]] void corrupt(const std::string& what) {
  throw Error(Errc::corrupt, "corrupt segment header: " + what + "; remove it with 'cpipc rm NAME'");
}

// Reads a field from the untrusted bytes without assuming their alignment.
template <class T>
T load(const std::byte* base, std::size_t offset) noexcept {
  T v;
  std::memcpy(&v, base + offset, sizeof v);
  return v;
}

#define CPIPC_FIELD(name) offsetof(format::Header, name)

}  // namespace

std::uint64_t data_stride_for(std::uint64_t frame_bytes) {
  // Not (frame_bytes + page - 1) / page: that sum wraps to a tiny stride for frames near 2^64.
  const std::uint64_t pages =
      frame_bytes == 0 ? 1 : frame_bytes / format::kPageBytes + (frame_bytes % format::kPageBytes != 0);
  std::uint64_t stride = 0;
  if (pages > (~std::uint64_t{0} / format::kPageBytes) || __builtin_mul_overflow(pages, format::kPageBytes, &stride)) {
    throw Error(Errc::invalid_argument, "frame too large");
  }
  return stride;
}

std::uint64_t segment_bytes(const TensorDesc& desc, std::uint32_t slots) {
  const std::uint64_t stride = data_stride_for(desc.nbytes());
  std::uint64_t total = 0;
  if (__builtin_mul_overflow(stride, std::uint64_t{slots}, &total) ||
      __builtin_add_overflow(total, std::uint64_t{format::kHeaderBytes}, &total)) {
    throw Error(Errc::invalid_argument, "segment too large");
  }
  return total;
}

SegmentLayout parse_header(std::span<const std::byte> object, std::uint64_t object_bytes) {
  using namespace format;
  if (object_bytes < kHeaderBytes || object.size() < kHeaderBytes) {
    corrupt("the object holds " + std::to_string(object_bytes) + " bytes, less than the 4096-byte header");
  }
  const std::byte* h = object.data();
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) corrupt("bad magic (not a cpipc segment, or still being created)");

  SegmentLayout out;
  out.abi_major = load<std::uint16_t>(h, CPIPC_FIELD(abi_major));
  out.abi_minor = load<std::uint16_t>(h, CPIPC_FIELD(abi_minor));
  if (out.abi_major != kAbiMajor) {
    corrupt("ABI version " + std::to_string(out.abi_major) + "." + std::to_string(out.abi_minor) +
            ", this cpipc reads " + std::to_string(kAbiMajor) + ".x");
  }
  if (load<std::uint32_t>(h, CPIPC_FIELD(header_bytes)) != kHeaderBytes) corrupt("header_bytes is not 4096");
  if (load<std::uint32_t>(h, CPIPC_FIELD(slot_record_bytes)) != sizeof(SlotRecord)) {
    corrupt("slot_record_bytes is not 448");
  }
  if (load<std::uint64_t>(h, CPIPC_FIELD(slots_offset)) != offsetof(Header, slots)) corrupt("slots_offset is not 512");
  if (load<std::uint32_t>(h, CPIPC_FIELD(lease_count)) != kLeaseCount ||
      load<std::uint32_t>(h, CPIPC_FIELD(lease_record_bytes)) != sizeof(LeaseRecord) ||
      load<std::uint64_t>(h, CPIPC_FIELD(leases_offset)) != offsetof(Header, leases)) {
    corrupt("lease table is not 16 x 16 bytes at offset 256");
  }

  out.total_bytes = load<std::uint64_t>(h, CPIPC_FIELD(total_bytes));
  if (out.total_bytes != object_bytes) {
    corrupt("total_bytes " + std::to_string(out.total_bytes) + " but the object holds " + std::to_string(object_bytes));
  }
  out.slot_count = load<std::uint32_t>(h, CPIPC_FIELD(slot_count));
  if (out.slot_count < 1 || out.slot_count > kMaxSlots) {
    corrupt("slot_count " + std::to_string(out.slot_count) + " is outside 1..8");
  }

  // Tensor description.
  DType dtype;
  dtype.code = static_cast<DTypeCode>(load<std::uint8_t>(h, CPIPC_FIELD(dtype_code)));
  dtype.bits = load<std::uint8_t>(h, CPIPC_FIELD(dtype_bits));
  dtype.lanes = load<std::uint16_t>(h, CPIPC_FIELD(dtype_lanes));
  if (!is_supported(dtype)) corrupt("unsupported dtype " + to_string(dtype));
  out.desc.dtype = dtype;
  out.desc.ndim = load<std::uint32_t>(h, CPIPC_FIELD(ndim));
  if (out.desc.ndim > kMaxDims) corrupt("ndim " + std::to_string(out.desc.ndim) + " is over 4");
  std::uint64_t numel = 1;
  std::int64_t nonzero = 1;     // the extents' product without the zeros: what numel() multiplies on the way
  std::uint64_t max_index = 0;  // largest element index reachable through strides
  bool empty = false;
  for (std::uint32_t i = 0; i < kMaxDims; ++i) {
    const auto extent = load<std::int64_t>(h, CPIPC_FIELD(shape) + 8 * i);
    const auto stride = load<std::int64_t>(h, CPIPC_FIELD(strides) + 8 * i);
    if (i >= out.desc.ndim) {
      if (extent != 0 || stride != 0) corrupt("shape/strides beyond ndim are not zero");
      continue;
    }
    if (extent < 0 || stride < 0) corrupt("negative shape or stride in dimension " + std::to_string(i));
    out.desc.shape[i] = extent;
    out.desc.strides[i] = stride;
    std::uint64_t span = 0;
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(extent), numel, &numel) ||
        (extent != 0 && __builtin_mul_overflow(extent, nonzero, &nonzero))) {
      corrupt("shape overflows");
    }
    if (extent == 0) {
      empty = true;
    } else if (__builtin_mul_overflow(static_cast<std::uint64_t>(extent - 1), static_cast<std::uint64_t>(stride),
                                      &span) ||
               __builtin_add_overflow(max_index, span, &max_index)) {
      corrupt("strides overflow");
    }
  }
  std::uint64_t frame_bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(dtype.itemsize()), &frame_bytes)) {
    corrupt("shape x itemsize overflows");
  }
  if (load<std::uint64_t>(h, CPIPC_FIELD(frame_bytes)) != frame_bytes) {
    corrupt("frame_bytes " + std::to_string(load<std::uint64_t>(h, CPIPC_FIELD(frame_bytes))) +
            " is not shape x itemsize = " + std::to_string(frame_bytes));
  }
  if (!empty && (max_index >= numel)) corrupt("strides reach outside the frame");

  // Slot data regions: page-aligned, inside the object, no overlap with the header.
  out.data_offset = load<std::uint64_t>(h, CPIPC_FIELD(data_offset));
  out.data_stride = load<std::uint64_t>(h, CPIPC_FIELD(data_stride));
  if (out.data_offset < kHeaderBytes || out.data_offset % kPageBytes != 0) {
    corrupt("data_offset " + std::to_string(out.data_offset) + " is not a page boundary after the header");
  }
  if (out.data_stride % kPageBytes != 0 || out.data_stride < frame_bytes || out.data_stride == 0) {
    corrupt("data_stride " + std::to_string(out.data_stride) + " cannot hold a frame of " +
            std::to_string(frame_bytes) + " bytes on page boundaries");
  }
  std::uint64_t end = 0;
  if (__builtin_mul_overflow(out.data_stride, std::uint64_t{out.slot_count}, &end) ||
      __builtin_add_overflow(end, out.data_offset, &end)) {
    corrupt("slot regions overflow");
  }
  if (end > object_bytes) {
    corrupt("slot regions end at " + std::to_string(end) + ", past the object's " + std::to_string(object_bytes) +
            " bytes");
  }
  for (std::uint32_t s = 0; s < out.slot_count; ++s) {
    const std::size_t base = offsetof(Header, slots) + s * sizeof(SlotRecord);
    const auto host_offset = load<std::uint64_t>(h, base + offsetof(SlotRecord, host_offset));
    const auto host_bytes = load<std::uint64_t>(h, base + offsetof(SlotRecord, host_bytes));
    if (host_offset != out.slot_offset(s) || host_bytes != frame_bytes) {
      corrupt("slot " + std::to_string(s) + " host region does not match the layout");
    }
  }

  // Producer and device.
  out.producer.pid = static_cast<pid_t>(load<std::uint32_t>(h, CPIPC_FIELD(producer_pid)));
  out.producer.start_ticks = load<std::uint64_t>(h, CPIPC_FIELD(producer_start_ticks));
  std::memcpy(out.producer.boot_id.data(), h + CPIPC_FIELD(boot_id), 16);
  out.created_realtime_ns = load<std::uint64_t>(h, CPIPC_FIELD(created_realtime_ns));
  std::memcpy(out.device_uuid.data(), h + CPIPC_FIELD(device_uuid), 16);
  const auto kind = load<std::uint32_t>(h, CPIPC_FIELD(export_kind));
  if (kind > static_cast<std::uint32_t>(ExportKind::vmm_fd)) corrupt("unknown export_kind " + std::to_string(kind));
  out.export_kind = static_cast<ExportKind>(kind);
  out.device_ordinal = load<std::int32_t>(h, CPIPC_FIELD(device_ordinal));
  if (out.producer.pid <= 0) corrupt("producer_pid is not positive");
  const auto state = load<std::uint32_t>(h, CPIPC_FIELD(state));
  if (state > static_cast<std::uint32_t>(State::replaced)) corrupt("unknown state " + std::to_string(state));
  const auto latest = load<std::uint32_t>(h, CPIPC_FIELD(latest_slot));
  if (latest != kNoSlot && latest >= out.slot_count) corrupt("latest_slot " + std::to_string(latest) + " out of range");
  return out;
}

}  // namespace cpipc::ipc
