// The on-disk (in-/dev/shm) layout of a cpipc segment, ABI 1.0.
//
// docs/FORMAT.md is the prose version of this file; keep them in step.
// Every field is fixed-width and little-endian. The header occupies the
// first 4 KiB page; slot i's host data region starts at
// data_offset + i * data_stride (page-aligned).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace cpipc::ipc::format {

static_assert(std::endian::native == std::endian::little,
              "the segment format is little-endian; big-endian hosts need byte swapping");

inline constexpr char kMagic[8] = {'C', 'P', 'I', 'P', 'C', 'S', 'E', 'G'};
inline constexpr std::uint16_t kAbiMajor = 1;
inline constexpr std::uint16_t kAbiMinor = 0;
inline constexpr std::uint32_t kHeaderBytes = 4096;
inline constexpr std::uint64_t kPageBytes = 4096;
inline constexpr std::uint32_t kMaxDims = 4;
inline constexpr std::uint32_t kMaxSlots = 8;
inline constexpr std::uint32_t kLeaseCount = 16;
inline constexpr std::uint32_t kMetaBytes = 240;
inline constexpr std::uint32_t kHandleBytes = 64;
inline constexpr std::uint32_t kNoSlot = 0xFFFFFFFFu;

// Segment lifecycle, header field `state`.
enum class State : std::uint32_t {
  creating = 0,  // header not complete yet (magic is still zero)
  live = 1,      // producer running
  closed = 2,    // producer ended normally; the name is about to be unlinked
  replaced = 3,  // producer re-created the stream with another shape/dtype
};

// How the device buffers of the slots are exported, header field `export_kind`.
enum class ExportKind : std::uint32_t {
  none = 0,      // host views only
  cuda_ipc = 1,  // cudaIpcMemHandle + cudaIpcEventHandle per slot
  vmm_fd = 2,    // reserved: cuMemCreate with POSIX fd handles over a socket
};

// Slot flag bits, slot field `flags`.
inline constexpr std::uint32_t kSlotHostValid = 1u << 0;
inline constexpr std::uint32_t kSlotDeviceValid = 1u << 1;

// One reader lease (16 bytes). A reader that holds a live, unexpired lease
// on a slot asks the producer not to overwrite it; the producer honours it
// while it has another free slot and never waits for it.
struct LeaseRecord {
  std::uint32_t pid;         // 0 = free entry
  std::uint32_t slot;        // leased slot index, kNoSlot while being set up
  std::uint64_t expires_ns;  // CLOCK_MONOTONIC deadline
};
static_assert(sizeof(LeaseRecord) == 16);

// One ring slot (448 bytes). Fields other than `seq` are written while `seq`
// is odd; readers copy them and re-check `seq` (seqlock).
struct SlotRecord {
  std::uint64_t seq;                   // 0 never written; odd while written
  std::uint64_t frame_id;              // 1-based, increases by one per publish
  std::uint64_t publish_realtime_ns;   // CLOCK_REALTIME at publish
  std::uint64_t publish_monotonic_ns;  // CLOCK_MONOTONIC at publish
  std::uint64_t host_offset;           // byte offset of this slot's data in the object
  std::uint64_t host_bytes;            // bytes of the frame (== frame_bytes)
  std::uint8_t ipc_mem_handle[kHandleBytes];
  std::uint64_t device_offset;  // offset of the frame inside the IPC allocation
  std::uint64_t device_bytes;   // size of the IPC allocation
  std::uint8_t ipc_event_handle[kHandleBytes];
  std::uint32_t flags;            // kSlotHostValid | kSlotDeviceValid
  std::uint32_t object_count;     // per-frame metadata: labelled objects
  float diameter;                 // per-frame metadata: diameter used (pixels), 0 if n/a
  std::uint32_t meta_len;         // bytes used in meta
  std::uint8_t meta[kMetaBytes];  // UTF-8 JSON object: source, timings, ...
};
static_assert(sizeof(SlotRecord) == 448);

// The header page.
struct Header {
  char magic[8];  // "CPIPCSEG", written last at creation
  std::uint16_t abi_major;
  std::uint16_t abi_minor;
  std::uint32_t header_bytes;       // 4096
  std::uint64_t total_bytes;        // size of the shm object
  std::uint32_t slot_count;         // 1..kMaxSlots
  std::uint32_t slot_record_bytes;  // 448
  std::uint64_t slots_offset;       // 512
  std::uint64_t data_offset;        // first slot's data, page-aligned
  std::uint64_t data_stride;        // bytes between slots' data, page multiple
  std::uint64_t frame_bytes;        // product(shape) * itemsize
  // Tensor description, DLPack conventions.
  std::uint8_t dtype_code;  // 0 int, 1 uint, 2 float, 4 bfloat, 6 bool
  std::uint8_t dtype_bits;
  std::uint16_t dtype_lanes;       // 1
  std::uint32_t ndim;              // 0..kMaxDims
  std::int64_t shape[kMaxDims];    // unused dims are 0
  std::int64_t strides[kMaxDims];  // in elements, unused dims are 0
  // Producer identity: pid reuse and reboots are detected.
  std::uint32_t producer_pid;
  std::uint32_t state;                 // State
  std::uint64_t producer_start_ticks;  // /proc/<pid>/stat field 22
  std::uint8_t boot_id[16];            // /proc/sys/kernel/random/boot_id
  std::uint64_t created_realtime_ns;
  // Device export.
  std::uint8_t device_uuid[16];  // cudaDeviceProp::uuid, zero if none
  std::uint32_t export_kind;     // ExportKind
  std::int32_t device_ordinal;   // producer's ordinal, -1 if none
  // Live counters.
  std::uint32_t notify;       // futex word, incremented on every publish and state change
  std::uint32_t latest_slot;  // kNoSlot until the first publish
  std::uint64_t frames_published;
  std::uint64_t lease_overrides;     // times the producer had to overwrite a leased slot
  std::uint32_t lease_count;         // kLeaseCount
  std::uint32_t lease_record_bytes;  // 16
  std::uint64_t leases_offset;       // 256
  std::uint32_t waiters;             // readers inside FUTEX_WAIT; the producer skips the wake at 0
  std::uint8_t reserved0[12];
  LeaseRecord leases[kLeaseCount];
  SlotRecord slots[kMaxSlots];
};
static_assert(sizeof(Header) == kHeaderBytes);
static_assert(offsetof(Header, dtype_code) == 64);
static_assert(offsetof(Header, shape) == 72);
static_assert(offsetof(Header, strides) == 104);
static_assert(offsetof(Header, producer_pid) == 136);
static_assert(offsetof(Header, boot_id) == 152);
static_assert(offsetof(Header, device_uuid) == 176);
static_assert(offsetof(Header, notify) == 200);
static_assert(offsetof(Header, frames_published) == 208);
static_assert(offsetof(Header, lease_count) == 224);
static_assert(offsetof(Header, leases) == 256);
static_assert(offsetof(Header, slots) == 512);
static_assert(offsetof(SlotRecord, ipc_mem_handle) == 48);
static_assert(offsetof(SlotRecord, ipc_event_handle) == 128);
static_assert(offsetof(SlotRecord, meta) == 208);

}  // namespace cpipc::ipc::format
