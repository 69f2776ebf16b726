#include "cpipc/ipc/writer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/process.hpp"
#include "guard.hpp"
#include "ownership.hpp"
#include "sync.hpp"

namespace cpipc::ipc {

using detail::access;
using detail::atomic;
using detail::SegmentState;
using format::Header;
using format::SlotRecord;

namespace {

std::uint64_t magic_word() noexcept {
  std::uint64_t w;
  std::memcpy(&w, format::kMagic, sizeof w);
  return w;
}

// Unlinks `object` only if it is still the object open as `fd`: after
// 'cpipc rm' another producer may own the name, and its segment is not ours.
void unlink_if_ours(const std::string& object, int fd) noexcept {
  struct stat mine {};
  struct stat named {};
  const std::string path = "/dev/shm" + object;
  if (::fstat(fd, &mine) != 0 || ::stat(path.c_str(), &named) != 0) return;
  if (mine.st_ino == named.st_ino && mine.st_dev == named.st_dev) ::shm_unlink(object.c_str());
}

Header& header_of(const SegmentState& s) noexcept { return *reinterpret_cast<Header*>(s.map.data()); }

// The Error(exists) for a taken name, saying so when the object there is
// not one of ours (another user may have planted it to block us).
Error name_taken(const std::string& name) {
  struct stat st {};
  const std::string path = shm_file_path(name);
  if (::lstat(path.c_str(), &st) == 0) {
    if (const std::string why = detail::foreign_reason(st); !why.empty()) {
      return Error(Errc::exists, "segment name '" + name + "' is taken by " + path + ", which " + why +
                                     ": not a segment of ours, another user may have planted it; ask its owner or "
                                     "root to remove it, or choose another name");
    }
  }
  return Error(Errc::exists, "segment '" + name +
                                 "' already exists; choose another name, or remove it with 'cpipc rm " + name +
                                 "' ('cpipc gc' if its producer is gone)");
}

bool slot_leased(const Header& h, std::uint32_t slot, std::uint64_t now_ns) noexcept {
  for (auto& lease : h.leases) {
    auto& l = const_cast<format::LeaseRecord&>(lease);
    if (atomic(l.slot).load(std::memory_order_seq_cst) != slot) continue;
    if (atomic(l.expires_ns).load(std::memory_order_seq_cst) > now_ns) return true;
  }
  return false;
}

// seq_cst on both sides (readers: waiters++, then FUTEX_WAIT compares
// notify): either we see the waiter, or its wait sees the new notify.
// Under the guard: a truncated object cannot take the producer down.
void wake_readers(const SegmentState& s) noexcept {
  Header& h = header_of(s);
  bool waiters = false;
  (void)detail::guarded(s.map.data(), s.map.size(), [&]() noexcept {
    atomic(h.notify).fetch_add(1, std::memory_order_seq_cst);
    waiters = atomic(h.waiters).load(std::memory_order_seq_cst) != 0;
  });
  if (waiters) detail::futex_wake_all(h.notify);
}

}  // namespace

SegmentWriter SegmentWriter::create(std::string_view name, const TensorDesc& desc, const SegmentOptions& options) {
  const std::string object = shm_object_name(name);
  if (!is_supported(desc.dtype)) {
    throw Error(Errc::invalid_argument,
                "unsupported dtype " + to_string(desc.dtype) + " for segment '" + std::string(name) + "'");
  }
  if (desc.ndim > format::kMaxDims) throw Error(Errc::invalid_argument, "a segment holds at most 4 dimensions");
  if (!desc.is_contiguous()) throw Error(Errc::invalid_argument, "a segment frame must be C-contiguous");
  if (options.slots < 1 || options.slots > format::kMaxSlots) {
    throw Error(Errc::invalid_argument, "slots must be 1..8, got " + std::to_string(options.slots));
  }
  const bool exported = options.export_kind == format::ExportKind::cuda_ipc;
  if (exported ? options.slot_exports.size() != options.slots : !options.slot_exports.empty()) {
    throw Error(Errc::invalid_argument, "a cuda_ipc segment needs one slot export per slot (" +
                                            std::to_string(options.slot_exports.size()) + " for " +
                                            std::to_string(options.slots) + " slots), and no other kind has any");
  }
  for (const SlotExport& e : options.slot_exports) {
    if (e.device_bytes < desc.nbytes() || e.device_offset > e.device_bytes - desc.nbytes()) {
      throw Error(Errc::invalid_argument, "a slot's device buffer (" + std::to_string(e.device_bytes) +
                                              " bytes, frame at " + std::to_string(e.device_offset) +
                                              ") cannot hold a " + desc.to_string() + " frame");
    }
  }
  const std::uint64_t total = segment_bytes(desc, options.slots);

  SegmentWriter w;
  w.s_ = std::make_shared<SegmentState>();
  SegmentState& s = *w.s_;
  s.name = std::string(name);
  s.fd = detail::UniqueFd(::shm_open(object.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (s.fd.get() < 0) {
    const int err = errno;
    if (err == EEXIST) throw name_taken(s.name);
    throw_errno("shm_open " + object, err);
  }
  // From here on the name is ours: unlink it again if anything fails.
  struct Unlinker {
    const std::string& object;
    bool armed = true;
    ~Unlinker() {
      if (armed) ::shm_unlink(object.c_str());
    }
  } unlinker{object};

  ::fchmod(s.fd.get(), 0600);  // exactly 0600 whatever the umask: readers insist on it
  if (const int err = ::posix_fallocate(s.fd.get(), 0, static_cast<off_t>(total)); err != 0) {
    throw Error(Errc::system, "cannot allocate " + std::to_string(total) + " bytes in /dev/shm for segment '" + s.name +
                                  "': " + std::strerror(err) + "; free space there or publish fewer slots");
  }
  s.map = detail::Mapping(s.fd.get(), total, /*writable=*/true);

  // Build the header in private memory, then copy it in under the guard (the
  // name is visible: someone may truncate the object already).
  auto page = std::make_unique<Header>();
  Header& h = *page;
  std::memset(&h, 0, sizeof h);
  h.abi_major = format::kAbiMajor;
  h.abi_minor = format::kAbiMinor;
  h.header_bytes = format::kHeaderBytes;
  h.total_bytes = total;
  h.slot_count = options.slots;
  h.slot_record_bytes = sizeof(SlotRecord);
  h.slots_offset = offsetof(Header, slots);
  h.data_offset = format::kHeaderBytes;
  h.data_stride = data_stride_for(desc.nbytes());
  h.frame_bytes = desc.nbytes();
  h.dtype_code = static_cast<std::uint8_t>(desc.dtype.code);
  h.dtype_bits = desc.dtype.bits;
  h.dtype_lanes = desc.dtype.lanes;
  h.ndim = desc.ndim;
  for (std::uint32_t i = 0; i < desc.ndim; ++i) {
    h.shape[i] = desc.shape[i];
    h.strides[i] = desc.strides[i];
  }
  const ProcessIdentity self = ProcessIdentity::self();
  h.producer_pid = static_cast<std::uint32_t>(self.pid);
  h.producer_start_ticks = self.start_ticks;
  std::memcpy(h.boot_id, self.boot_id.data(), 16);
  h.created_realtime_ns = realtime_ns();
  std::memcpy(h.device_uuid, options.device_uuid.data(), 16);
  h.export_kind = static_cast<std::uint32_t>(options.export_kind);
  h.device_ordinal = options.device_ordinal;
  h.latest_slot = format::kNoSlot;
  h.lease_count = format::kLeaseCount;
  h.lease_record_bytes = sizeof(format::LeaseRecord);
  h.leases_offset = offsetof(Header, leases);
  for (auto& lease : h.leases) lease.slot = format::kNoSlot;
  for (std::uint32_t i = 0; i < options.slots; ++i) {
    h.slots[i].host_offset = h.data_offset + i * h.data_stride;
    h.slots[i].host_bytes = h.frame_bytes;
    if (exported) {
      const SlotExport& e = options.slot_exports[i];
      std::memcpy(h.slots[i].ipc_mem_handle, e.mem_handle.data(), format::kHandleBytes);
      h.slots[i].device_offset = e.device_offset;
      h.slots[i].device_bytes = e.device_bytes;
      std::memcpy(h.slots[i].ipc_event_handle, e.event_handle.data(), format::kHandleBytes);
    }
  }
  h.state = static_cast<std::uint32_t>(format::State::live);
  std::memcpy(h.magic, format::kMagic, sizeof h.magic);  // the private copy is complete; the shared one gets it last
  s.layout = parse_header({reinterpret_cast<const std::byte*>(page.get()), sizeof(Header)}, total);
  Header& shared = header_of(s);
  access(s, [&]() noexcept {
    // Everything but the magic, which goes last: a reader that sees it sees a complete header.
    std::memcpy(reinterpret_cast<std::byte*>(&shared) + sizeof h.magic,
                reinterpret_cast<const std::byte*>(&h) + sizeof h.magic, sizeof h - sizeof h.magic);
    atomic(*reinterpret_cast<std::uint64_t*>(shared.magic)).store(magic_word(), std::memory_order_release);
  });
  s.open = true;
  unlinker.armed = false;
  return w;
}

SegmentWriter::SegmentWriter(SegmentWriter&& other) noexcept : s_(std::move(other.s_)) {}

SegmentWriter& SegmentWriter::operator=(SegmentWriter&& other) noexcept {
  if (this != &other) {
    close();
    s_ = std::move(other.s_);
  }
  return *this;
}

SegmentWriter::~SegmentWriter() { close(); }

Header& SegmentWriter::header() const noexcept { return header_of(*s_); }

void SegmentWriter::close(format::State final_state) noexcept {
  if (!s_ || !s_->open) return;
  SegmentState& s = *s_;
  s.open = false;
  Header& h = header();
  (void)detail::guarded(s.map.data(), s.map.size(), [&]() noexcept {
    atomic(h.state).store(static_cast<std::uint32_t>(final_state), std::memory_order_release);
  });
  wake_readers(s);
  unlink_if_ours(shm_object_name(s.name), s.fd.get());
}

void SegmentWriter::unlink_name() noexcept {
  if (s_) unlink_if_ours(shm_object_name(s_->name), s_->fd.get());
}

bool SegmentWriter::name_lost() const {
  struct stat mine {};
  struct stat named {};
  const std::string path = shm_file_path(s_->name);
  // Where we cannot tell (a failed fstat, /dev/shm unreadable), the name is
  // taken to be ours: better an unlinked segment than a stolen name.
  if (::fstat(s_->fd.get(), &mine) != 0) return false;
  if (::lstat(path.c_str(), &named) != 0) {
    if (errno != ENOENT) return false;
    std::fprintf(stderr, "cpipc: segment '%s' was unlinked by someone else; re-creating it under the same name\n",
                 s_->name.c_str());
    return true;
  }
  if (named.st_dev == mine.st_dev && named.st_ino == mine.st_ino) return false;
  // Another object took the name after ours was unlinked: another producer's
  // segment, or a planted file. Replacing it would steal a live producer's
  // stream; refuse until its owner frees the name.
  const std::string why = detail::foreign_reason(named);
  throw Error(Errc::exists, "segment '" + s_->name + "' was unlinked behind its producer's back and " + path +
                                " is now another object" + (why.empty() ? " (another producer's?)" : ", which " + why) +
                                "; not replacing it: stop its producer or remove it with 'cpipc rm " + s_->name +
                                "', and the next publish re-creates the segment");
}

std::uint64_t SegmentWriter::frames_published() const noexcept {
  std::uint64_t n = 0;
  (void)detail::guarded(s_->map.data(), s_->map.size(),
                        [&]() noexcept { n = atomic(header().frames_published).load(std::memory_order_acquire); });
  return n;
}

std::uint64_t SegmentWriter::lease_overrides() const noexcept {
  std::uint64_t n = 0;
  (void)detail::guarded(s_->map.data(), s_->map.size(),
                        [&]() noexcept { n = atomic(header().lease_overrides).load(std::memory_order_acquire); });
  return n;
}

namespace {

// Picks the slot for the next frame and stores its odd seq: the body of
// begin_frame, run under the SIGBUS guard (plain loads and stores only).
struct Pick {
  std::uint32_t slot;
  std::uint64_t old_seq;
};
Pick pick_slot(Header& h, std::uint32_t k, std::span<const std::uint64_t> keep) noexcept {
  const std::uint32_t latest = atomic(h.latest_slot).load(std::memory_order_relaxed);

  // Oldest frame first; the latest frame is kept for readers unless K == 1.
  std::uint32_t order[format::kMaxSlots];
  std::uint32_t n = 0;
  for (std::uint32_t s = 0; s < k; ++s) {
    if (s != latest || k == 1) order[n++] = s;
  }
  for (std::uint32_t i = 1; i < n; ++i) {  // insertion sort: n <= 8
    for (std::uint32_t j = i; j > 0 && h.slots[order[j]].frame_id < h.slots[order[j - 1]].frame_id; --j) {
      std::swap(order[j], order[j - 1]);
    }
  }

  const std::uint64_t now = monotonic_ns();
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t s = order[i];
    if (slot_leased(h, s, now) || std::find(keep.begin(), keep.end(), h.slots[s].frame_id) != keep.end()) continue;
    auto seq = atomic(h.slots[s].seq);
    const std::uint64_t old = seq.load(std::memory_order_relaxed);
    seq.store(old + 1, std::memory_order_seq_cst);
    // A reader may have leased the slot between our check and the odd store
    // (it stores its lease, then re-reads seq): look again, and step back if
    // there is still somewhere else to write. Nothing was written yet.
    if (i + 1 < n && slot_leased(h, s, now)) {
      seq.store(old, std::memory_order_seq_cst);
      continue;
    }
    return {s, old};
  }
  // Every candidate is leased: take the oldest anyway, never wait for readers.
  const std::uint32_t s = order[0];
  atomic(h.lease_overrides).fetch_add(1, std::memory_order_relaxed);
  auto seq = atomic(h.slots[s].seq);
  const std::uint64_t old = seq.load(std::memory_order_relaxed);
  seq.store(old + 1, std::memory_order_seq_cst);
  return {s, old};
}

}  // namespace

FrameWriter SegmentWriter::begin_frame(std::span<const std::uint64_t> keep) {
  SegmentState& s = *s_;
  if (!s.open) throw Error(Errc::invalid_argument, "segment '" + s.name + "' is closed");
  if (s.writing) throw Error(Errc::invalid_argument, "a frame of segment '" + s.name + "' is already being written");
  Header& h = header();
  const Pick p = access(s, [&]() noexcept { return pick_slot(h, s.layout.slot_count, keep); });
  s.writing = true;
  return FrameWriter(s_, p.slot, p.old_seq);
}

FrameInfo SegmentWriter::publish(std::span<const std::byte> data, const FrameMeta& meta,
                                 std::span<const std::uint64_t> keep) {
  if (data.size() != desc().nbytes()) {
    throw Error(Errc::invalid_argument, "frame of " + std::to_string(data.size()) + " bytes for segment '" + name() +
                                            "' of " + desc().to_string() + " (" + std::to_string(desc().nbytes()) +
                                            " bytes)");
  }
  FrameWriter frame = begin_frame(keep);
  if (!data.empty()) {
    access(*s_, [&]() noexcept { std::memcpy(frame.bytes().data(), data.data(), data.size()); });
  }
  return frame.publish(meta);
}

// FrameWriter

FrameWriter::FrameWriter(std::shared_ptr<SegmentState> segment, std::uint32_t slot, std::uint64_t old_seq)
    : segment_(std::move(segment)),
      slot_(slot),
      old_seq_(old_seq),
      bytes_(segment_->map.data() + segment_->layout.slot_offset(slot), segment_->layout.desc.nbytes()) {}

FrameWriter::FrameWriter(FrameWriter&& other) noexcept
    : segment_(other.segment_),
      slot_(other.slot_),
      device_valid_(other.device_valid_),
      old_seq_(other.old_seq_),
      bytes_(other.bytes_),
      done_(std::exchange(other.done_, true)) {}

std::uint64_t FrameWriter::host_offset() const noexcept { return segment_->layout.slot_offset(slot_); }

FrameWriter::~FrameWriter() {
  if (done_) return;
  // Abandoned after the data may have been touched: a new even seq (never the
  // old one, or a reader could accept a half-written frame) and no valid data.
  SegmentState& s = *segment_;
  SlotRecord& rec = header_of(s).slots[slot_];
  (void)detail::guarded(s.map.data(), s.map.size(), [&]() noexcept {
    rec.flags = 0;
    atomic(rec.seq).store(old_seq_ + 2, std::memory_order_release);
  });
  s.writing = false;
}

FrameInfo FrameWriter::publish(const FrameMeta& meta) {
  if (done_) throw Error(Errc::invalid_argument, "frame already published");
  if (meta.json.size() > format::kMetaBytes) {
    throw Error(Errc::invalid_argument,
                "frame metadata is " + std::to_string(meta.json.size()) + " bytes; at most 240 fit in a slot");
  }
  SegmentState& s = *segment_;
  Header& h = header_of(s);
  SlotRecord& rec = h.slots[slot_];
  FrameInfo info;
  info.slot = slot_;
  info.frame_id = access(s, [&]() noexcept { return atomic(h.frames_published).load(std::memory_order_relaxed); }) + 1;
  info.publish_realtime_ns = realtime_ns();
  info.publish_monotonic_ns = monotonic_ns();
  info.seq = old_seq_ + 2;
  info.meta = meta;
  info.device_valid = device_valid_;

  const char* json = meta.json.data();
  const std::size_t json_len = meta.json.size();
  // On a SIGBUS this throws and the destructor abandons the frame (guarded too).
  access(s, [&]() noexcept {
    rec.frame_id = info.frame_id;
    rec.publish_realtime_ns = info.publish_realtime_ns;
    rec.publish_monotonic_ns = info.publish_monotonic_ns;
    rec.flags = format::kSlotHostValid | (device_valid_ ? format::kSlotDeviceValid : 0u);
    rec.object_count = meta.object_count;
    rec.diameter = meta.diameter;
    rec.meta_len = static_cast<std::uint32_t>(json_len);
    std::memset(rec.meta, 0, sizeof rec.meta);
    std::memcpy(rec.meta, json, json_len);
    // The frame's last byte must still exist: a truncation to the header
    // leaves the slot record writable but the frame gone.
    if (!bytes_.empty()) (void)*static_cast<volatile std::byte*>(&bytes_.back());
    atomic(rec.seq).store(info.seq, std::memory_order_release);
    atomic(h.latest_slot).store(slot_, std::memory_order_release);
    atomic(h.frames_published).store(info.frame_id, std::memory_order_release);
  });
  done_ = true;
  s.writing = false;
  wake_readers(s);
  return info;
}

// Stream

Stream::Stream(std::string name, SegmentOptions options) : name_(std::move(name)), options_(options) {
  validate_name(name_);
}

FrameInfo Stream::publish(const TensorDesc& desc, std::span<const std::byte> data, const FrameMeta& meta,
                          std::span<const std::uint64_t> keep) {
  if (!writer_ || writer_->name_lost() || !writer_->desc().same_layout(desc)) {
    // The successor exists before the old segment says `replaced`: readers
    // it wakes attach to the new one at once instead of polling for it.
    if (writer_) writer_->unlink_name();
    try {
      SegmentWriter next = SegmentWriter::create(name_, desc, options_);
      if (writer_) writer_->close(format::State::replaced);
      writer_.emplace(std::move(next));
    } catch (...) {
      if (writer_) writer_->close(format::State::replaced);
      writer_.reset();
      throw;
    }
    ++generations_;
  }
  return writer_->publish(data, meta, keep);
}

}  // namespace cpipc::ipc
