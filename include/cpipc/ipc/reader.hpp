// The consumer side of a segment: attach by name, read frames without ever
// seeing a torn one, wait for new frames without spinning.
#pragma once

#include <chrono>
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

class SegmentReader;

// How long a seqlock read waits for a slot the producer is writing before it
// gives up with Error(timed_out): a producer stopped mid-write (SIGSTOP, a
// debugger) must not hang its readers.
inline constexpr std::chrono::milliseconds kDefaultPatience{2000};

// A zero-copy view of a frame, held in place by a lease: while the lease is
// live the producer writes other slots if it has any. The producer never
// waits for a lease, so after a long hold or with too few slots it may take
// the slot back; valid() tells (check it after reading, like a seqlock).
// It shares the mapping with its reader: moving or destroying the reader
// does not invalidate the view.
class FrameLease {
 public:
  FrameLease(FrameLease&& other) noexcept;
  FrameLease& operator=(FrameLease&& other) noexcept;
  FrameLease(const FrameLease&) = delete;
  ~FrameLease();

  [[nodiscard]] const HostView& view() const noexcept { return view_; }
  [[nodiscard]] const FrameInfo& info() const noexcept { return info_; }
  // True while the frame has not been overwritten (nor truncated away).
  [[nodiscard]] bool valid() const noexcept;
  // Extends the lease by `duration` from now.
  void renew(std::chrono::milliseconds duration) noexcept;

 private:
  friend class SegmentReader;

  FrameLease(std::shared_ptr<const detail::SegmentState> segment, std::uint32_t entry, HostView view, FrameInfo info);
  void release() noexcept;

  std::shared_ptr<const detail::SegmentState> segment_;
  std::uint32_t entry_;
  HostView view_;
  FrameInfo info_;
  std::uint64_t expires_ns_ = 0;  // our deadline in the entry; proves it is still ours
};

// Everything `cpipc info` shows about a segment.
struct SegmentStatus {
  SegmentLayout layout;
  format::State state = format::State::creating;
  bool producer_alive = false;
  std::uint64_t frames_published = 0;
  std::uint64_t lease_overrides = 0;
  std::uint32_t active_leases = 0;
  std::optional<FrameInfo> latest;
  // The latest slot stayed mid-write longer than the patience given to
  // status(): the producer is stopped or hung inside a write (latest unset).
  bool stuck = false;
};

class SegmentReader {
 public:
  // Attaches to the segment `name`: opens it read-write (leases and futex
  // waits write to the header, never to frame data), checks that the object
  // is ours (owner = our euid, mode exactly 0600, a regular file) and
  // validates the header against fstat before touching anything else. A
  // segment still being created (magic zero) gets kCreateGrace to finish.
  // Throws Error(not_found), Error(corrupt) (also for a foreign object),
  // Error(invalid_argument) for a bad name.
  static SegmentReader attach(std::string_view name);
  static constexpr std::chrono::milliseconds kCreateGrace{250};

  SegmentReader(SegmentReader&&) noexcept = default;
  SegmentReader& operator=(SegmentReader&&) noexcept = default;
  ~SegmentReader() = default;  // detach: unmap and close (after the last lease); never unlinks

  [[nodiscard]] const std::string& name() const noexcept { return s_->name; }
  [[nodiscard]] const SegmentLayout& layout() const noexcept { return s_->layout; }
  [[nodiscard]] const TensorDesc& desc() const noexcept { return s_->layout.desc; }

  // Every access to the mapping below is SIGBUS-safe: if another process
  // truncates the object, they throw Error(corrupt) instead of the process
  // dying. Seqlock retries give up after `patience` with Error(timed_out)
  // when the latest slot stays mid-write (a stopped producer).

  // Copies the latest frame into `out` (resized) and returns its info, or
  // nullopt if nothing has been published yet. Never torn (seqlock retry).
  std::optional<FrameInfo> copy_latest(std::vector<std::byte>& out,
                                       std::chrono::milliseconds patience = kDefaultPatience) const;

  // Copies the frame published as (slot, seq) into `out` (resized) and
  // returns its info, or nullopt if the slot has been written again since:
  // how a client reads the result the producer named in a message.
  std::optional<FrameInfo> copy_frame(std::uint32_t slot, std::uint64_t seq, std::vector<std::byte>& out) const;
  // The same into a caller's buffer of exactly desc().nbytes() bytes (else
  // Error(invalid_argument)): no zero-fill first, and one buffer can be
  // reused frame after frame (Python's consumers copy into numpy's memory).
  std::optional<FrameInfo> copy_latest(std::span<std::byte> out,
                                       std::chrono::milliseconds patience = kDefaultPatience) const;
  std::optional<FrameInfo> copy_frame(std::uint32_t slot, std::uint64_t seq, std::span<std::byte> out) const;
  // A zero-copy lease on the latest frame, nullopt if nothing was published.
  // Throws Error(system) when all lease entries are taken by live readers.
  [[nodiscard]] std::optional<FrameLease> lease_latest(
      std::chrono::milliseconds duration = std::chrono::milliseconds(2000),
      std::chrono::milliseconds patience = kDefaultPatience) const;

  // Blocks (futex, no spinning) until a frame newer than `after_frame_id` is
  // published, and returns its info. Throws Error(timed_out) after
  // `timeout`, Error(producer_gone) within ~0.1 s of the producer dying or
  // closing the segment.
  FrameInfo wait_next(std::uint64_t after_frame_id, std::chrono::milliseconds timeout) const;

  // What the producer exported for `slot`'s device buffer; nullopt unless
  // the segment's export kind is cuda_ipc. Throws Error(corrupt) if the
  // record's offsets do not fit, Error(invalid_argument) for a bad slot.
  [[nodiscard]] std::optional<SlotExport> slot_export(std::uint32_t slot) const;

  // Throws Error(producer_gone) if the producer has ended or died, and
  // Error(corrupt) if the object has been truncated.
  void check_producer() const;

  // A snapshot; a latest slot mid-write for longer than `patience` sets
  // `stuck` instead of throwing.
  [[nodiscard]] SegmentStatus status(std::chrono::milliseconds patience = kDefaultPatience) const;

 private:
  friend class FrameLease;
  SegmentReader() = default;
  [[nodiscard]] format::Header& header() const noexcept;
  [[nodiscard]] std::optional<FrameInfo> read_slot_info(std::uint32_t slot, std::uint64_t seq) const;
  [[nodiscard]] std::optional<FrameInfo> latest_info(std::uint64_t deadline_ns) const;
  [[nodiscard]] std::optional<FrameInfo> read_latest(std::byte* dst, std::size_t nbytes,
                                                     std::uint64_t deadline_ns) const;
  void contended(int attempt, std::uint32_t slot, std::uint64_t deadline_ns) const;

  std::shared_ptr<detail::SegmentState> s_;
};

}  // namespace cpipc::ipc
