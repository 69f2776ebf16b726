// The producer side of a segment: create, write frames into free ring slots,
// publish them, unlink on destruction.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cpipc/ipc/detail/segment_state.hpp"
#include "cpipc/ipc/format.hpp"
#include "cpipc/ipc/header.hpp"
#include "cpipc/ipc/tensor.hpp"

namespace cpipc::ipc {

struct SegmentOptions {
  std::uint32_t slots = 4;  // ring length K, 1..8; 1 means every publish overwrites
  format::ExportKind export_kind = format::ExportKind::none;
  std::array<std::uint8_t, 16> device_uuid{};
  std::int32_t device_ordinal = -1;
  // export_kind cuda_ipc: one per slot, what the producer's CUDA side
  // exported (module `cuda`, DeviceStream). Written before the magic, so a
  // reader never sees a segment without them.
  std::vector<SlotExport> slot_exports{};
};

class SegmentWriter;

// One frame being written: a writable span over a slot's host region. Publish
// it, or let it go out of scope to abandon it (the slot returns to the ring
// with its previous frame intact). It shares the mapping with its
// SegmentWriter, so moving the SegmentWriter while a frame is open is safe.
// Writes through bytes() are the caller's: if another process may truncate
// the object, copy with SegmentWriter::publish(data) instead (SIGBUS-safe).
class FrameWriter {
 public:
  FrameWriter(FrameWriter&& other) noexcept;
  FrameWriter& operator=(FrameWriter&&) = delete;
  FrameWriter(const FrameWriter&) = delete;
  ~FrameWriter();

  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::uint32_t slot() const noexcept { return slot_; }
  // The slot's device buffer holds this frame too (written and its event
  // recorded): publish sets the slot's device-valid flag, else clears it.
  void set_device_valid(bool valid) noexcept { device_valid_ = valid; }
  // Byte offset of this slot's host region in the shm object (for pinning).
  [[nodiscard]] std::uint64_t host_offset() const noexcept;

  // Makes the frame visible to readers and wakes waiting readers.
  // Throws Error(invalid_argument) if meta.json exceeds format::kMetaBytes,
  // Error(corrupt) if another process truncated the object.
  FrameInfo publish(const FrameMeta& meta = {});

 private:
  friend class SegmentWriter;
  FrameWriter(std::shared_ptr<detail::SegmentState> segment, std::uint32_t slot, std::uint64_t old_seq);

  std::shared_ptr<detail::SegmentState> segment_;
  std::uint32_t slot_;
  bool device_valid_ = false;
  std::uint64_t old_seq_;  // even seq before the write; restored if abandoned
  std::span<std::byte> bytes_;
  bool done_ = false;
};

class SegmentWriter {
 public:
  // Creates the shm object "/cpipc.<uid>.<name>" (O_CREAT|O_EXCL, 0600) sized
  // with posix_fallocate, and writes its header. Throws Error(exists) if the
  // name is taken, Error(invalid_argument) for a bad name, dtype or shape,
  // Error(system) if /dev/shm has no room. A name taken by an object that
  // is not ours (another owner, another mode) says so in its Error(exists).
  static SegmentWriter create(std::string_view name, const TensorDesc& desc, const SegmentOptions& options = {});

  SegmentWriter(SegmentWriter&& other) noexcept;
  SegmentWriter& operator=(SegmentWriter&& other) noexcept;
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;
  // Marks the segment closed, wakes readers, and unlinks the name.
  ~SegmentWriter();

  // Picks a free slot (not the latest frame, not leased by a live reader,
  // not holding one of the frames in `keep` where there is a choice; the
  // oldest otherwise) and opens it for writing. `keep` lists frame ids the
  // caller has promised to someone (a service's unread results). Never waits
  // for readers. One frame at a time. Throws Error(corrupt) if another
  // process truncated the object (every access here is SIGBUS-safe).
  [[nodiscard]] FrameWriter begin_frame(std::span<const std::uint64_t> keep = {});

  // Copies `data` (exactly desc().nbytes() bytes) into a free slot and publishes it.
  FrameInfo publish(std::span<const std::byte> data, const FrameMeta& meta = {},
                    std::span<const std::uint64_t> keep = {});

  [[nodiscard]] const std::string& name() const noexcept { return s_->name; }
  [[nodiscard]] const TensorDesc& desc() const noexcept { return s_->layout.desc; }
  [[nodiscard]] const SegmentLayout& layout() const noexcept { return s_->layout; }
  [[nodiscard]] std::uint64_t frames_published() const noexcept;
  [[nodiscard]] std::uint64_t lease_overrides() const noexcept;
  // Base of the whole mapping (for pinning the host regions with CUDA).
  [[nodiscard]] std::byte* mapping_base() const noexcept { return s_->map.data(); }

  // Ends the segment now: state `final_state`, wake readers, unlink. Idempotent.
  void close(format::State final_state = format::State::closed) noexcept;
  // Frees the name now, the segment still open for its readers: a successor
  // of the same name can then be created before this one is closed, so
  // readers woken by `replaced` find it at once.
  void unlink_name() noexcept;
  // Whether someone unlinked the name behind our back ('cpipc rm', Python's
  // resource tracker), for a stream that re-creates its segment before it
  // publishes: false while the name still names this object; true, after one
  // line on stderr, when the name is gone (the caller re-creates it); throws
  // Error(exists) when another object holds the name now, which is not ours
  // to replace. One lstat and one fstat, about a microsecond.
  [[nodiscard]] bool name_lost() const;

 private:
  friend class FrameWriter;
  SegmentWriter() = default;
  [[nodiscard]] format::Header& header() const noexcept;

  std::shared_ptr<detail::SegmentState> s_;
};

// A named stream that keeps one segment while the frames' shape and dtype
// stay the same, and re-creates it (state `replaced` for old readers) when
// they change: the seed's "reuse the shared array when nothing changed".
class Stream {
 public:
  explicit Stream(std::string name, SegmentOptions options = {});

  // Publishes one frame, creating or re-creating the segment as needed (also
  // when its name was unlinked behind our back: SegmentWriter::name_lost);
  // `keep` as for SegmentWriter::begin_frame.
  FrameInfo publish(const TensorDesc& desc, std::span<const std::byte> data, const FrameMeta& meta = {},
                    std::span<const std::uint64_t> keep = {});
  // The current segment, or nullptr before the first publish.
  [[nodiscard]] SegmentWriter* segment() noexcept { return writer_ ? &*writer_ : nullptr; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // Times the segment was created (1 after the first publish while nothing
  // changed and nobody unlinked its name).
  [[nodiscard]] std::uint32_t generations() const noexcept { return generations_; }

 private:
  std::string name_;
  SegmentOptions options_;
  std::optional<SegmentWriter> writer_;
  std::uint32_t generations_ = 0;
};

}  // namespace cpipc::ipc
