#include "cpipc/ipc/writer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/process.hpp"
#include "sync.hpp"

namespace cpipc::ipc {

using detail::atomic;
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
  w.name_ = std::string(name);
  w.fd_ = detail::UniqueFd(::shm_open(object.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (w.fd_.get() < 0) {
    const int err = errno;
    if (err == EEXIST) {
      throw Error(Errc::exists, "segment '" + w.name_ +
                                    "' already exists; choose another name, or remove it with 'cpipc rm " + w.name_ +
                                    "' ('cpipc gc' if its producer is gone)");
    }
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

  ::fchmod(w.fd_.get(), 0600);  // exactly 0600 whatever the umask
  if (const int err = ::posix_fallocate(w.fd_.get(), 0, static_cast<off_t>(total)); err != 0) {
    throw Error(Errc::system, "cannot allocate " + std::to_string(total) + " bytes in /dev/shm for segment '" +
                                  w.name_ + "': " + std::strerror(err) + "; free space there or publish fewer slots");
  }
  w.map_ = detail::Mapping(w.fd_.get(), total, /*writable=*/true);

  Header& h = w.header();  // zero-filled by the kernel
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
  for (std::uint32_t s = 0; s < options.slots; ++s) {
    h.slots[s].host_offset = h.data_offset + s * h.data_stride;
    h.slots[s].host_bytes = h.frame_bytes;
    if (exported) {
      const SlotExport& e = options.slot_exports[s];
      std::memcpy(h.slots[s].ipc_mem_handle, e.mem_handle.data(), format::kHandleBytes);
      h.slots[s].device_offset = e.device_offset;
      h.slots[s].device_bytes = e.device_bytes;
      std::memcpy(h.slots[s].ipc_event_handle, e.event_handle.data(), format::kHandleBytes);
    }
  }
  h.state = static_cast<std::uint32_t>(format::State::live);
  // The magic goes last: a reader that sees it sees a complete header.
  atomic(*reinterpret_cast<std::uint64_t*>(h.magic)).store(magic_word(), std::memory_order_release);

  w.layout_ = parse_header({w.map_.data(), w.map_.size()}, total);
  w.open_ = true;
  unlinker.armed = false;
  return w;
}

SegmentWriter::SegmentWriter(SegmentWriter&& other) noexcept
    : name_(std::move(other.name_)),
      fd_(std::move(other.fd_)),
      map_(std::move(other.map_)),
      layout_(other.layout_),
      writing_(std::exchange(other.writing_, false)),
      open_(std::exchange(other.open_, false)) {}

SegmentWriter& SegmentWriter::operator=(SegmentWriter&& other) noexcept {
  if (this != &other) {
    close();
    name_ = std::move(other.name_);
    fd_ = std::move(other.fd_);
    map_ = std::move(other.map_);
    layout_ = other.layout_;
    writing_ = std::exchange(other.writing_, false);
    open_ = std::exchange(other.open_, false);
  }
  return *this;
}

SegmentWriter::~SegmentWriter() { close(); }

Header& SegmentWriter::header() const noexcept { return *reinterpret_cast<Header*>(map_.data()); }

void SegmentWriter::close(format::State final_state) noexcept {
  if (!open_) return;
  open_ = false;
  Header& h = header();
  atomic(h.state).store(static_cast<std::uint32_t>(final_state), std::memory_order_release);
  wake_readers();
  unlink_if_ours(shm_object_name(name_), fd_.get());
}

void SegmentWriter::unlink_name() noexcept { unlink_if_ours(shm_object_name(name_), fd_.get()); }

void SegmentWriter::wake_readers() noexcept {
  // seq_cst on both sides (readers: waiters++, then FUTEX_WAIT compares
  // notify): either we see the waiter, or its wait sees the new notify.
  atomic(header().notify).fetch_add(1, std::memory_order_seq_cst);
  if (atomic(header().waiters).load(std::memory_order_seq_cst) != 0) detail::futex_wake_all(header().notify);
}

std::uint64_t SegmentWriter::frames_published() const noexcept {
  return atomic(header().frames_published).load(std::memory_order_acquire);
}

std::uint64_t SegmentWriter::lease_overrides() const noexcept {
  return atomic(header().lease_overrides).load(std::memory_order_acquire);
}

bool SegmentWriter::slot_leased(std::uint32_t slot, std::uint64_t now_ns) const noexcept {
  for (auto& lease : header().leases) {
    if (atomic(lease.slot).load(std::memory_order_seq_cst) != slot) continue;
    if (atomic(lease.expires_ns).load(std::memory_order_seq_cst) > now_ns) return true;
  }
  return false;
}

FrameWriter SegmentWriter::begin_frame(std::span<const std::uint64_t> keep) {
  if (!open_) throw Error(Errc::invalid_argument, "segment '" + name_ + "' is closed");
  if (writing_) throw Error(Errc::invalid_argument, "a frame of segment '" + name_ + "' is already being written");
  Header& h = header();
  const std::uint32_t k = layout_.slot_count;
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
    if (slot_leased(s, now) || std::find(keep.begin(), keep.end(), h.slots[s].frame_id) != keep.end()) continue;
    auto seq = atomic(h.slots[s].seq);
    const std::uint64_t old = seq.load(std::memory_order_relaxed);
    seq.store(old + 1, std::memory_order_seq_cst);
    // A reader may have leased the slot between our check and the odd store
    // (it stores its lease, then re-reads seq): look again, and step back if
    // there is still somewhere else to write. Nothing was written yet.
    if (i + 1 < n && slot_leased(s, now)) {
      seq.store(old, std::memory_order_seq_cst);
      continue;
    }
    writing_ = true;
    return FrameWriter(*this, s, old);
  }
  // Every candidate is leased: take the oldest anyway, never wait for readers.
  const std::uint32_t s = order[0];
  atomic(h.lease_overrides).fetch_add(1, std::memory_order_relaxed);
  auto seq = atomic(h.slots[s].seq);
  const std::uint64_t old = seq.load(std::memory_order_relaxed);
  seq.store(old + 1, std::memory_order_seq_cst);
  writing_ = true;
  return FrameWriter(*this, s, old);
}

FrameInfo SegmentWriter::publish(std::span<const std::byte> data, const FrameMeta& meta,
                                 std::span<const std::uint64_t> keep) {
  if (data.size() != desc().nbytes()) {
    throw Error(Errc::invalid_argument, "frame of " + std::to_string(data.size()) + " bytes for segment '" + name_ +
                                            "' of " + desc().to_string() + " (" + std::to_string(desc().nbytes()) +
                                            " bytes)");
  }
  FrameWriter frame = begin_frame(keep);
  if (!data.empty()) std::memcpy(frame.bytes().data(), data.data(), data.size());
  return frame.publish(meta);
}

// FrameWriter

FrameWriter::FrameWriter(SegmentWriter& owner, std::uint32_t slot, std::uint64_t old_seq)
    : owner_(&owner),
      slot_(slot),
      old_seq_(old_seq),
      bytes_(owner.map_.data() + owner.layout_.slot_offset(slot), owner.layout_.desc.nbytes()) {}

FrameWriter::FrameWriter(FrameWriter&& other) noexcept
    : owner_(other.owner_),
      slot_(other.slot_),
      device_valid_(other.device_valid_),
      old_seq_(other.old_seq_),
      bytes_(other.bytes_),
      done_(std::exchange(other.done_, true)) {}

std::uint64_t FrameWriter::host_offset() const noexcept { return owner_->layout_.slot_offset(slot_); }

FrameWriter::~FrameWriter() {
  if (done_) return;
  // Abandoned after the data may have been touched: a new even seq (never the
  // old one, or a reader could accept a half-written frame) and no valid data.
  Header& h = owner_->header();
  SlotRecord& rec = h.slots[slot_];
  rec.flags = 0;
  atomic(rec.seq).store(old_seq_ + 2, std::memory_order_release);
  owner_->writing_ = false;
}

FrameInfo FrameWriter::publish(const FrameMeta& meta) {
  if (done_) throw Error(Errc::invalid_argument, "frame already published");
  if (meta.json.size() > format::kMetaBytes) {
    throw Error(Errc::invalid_argument,
                "frame metadata is " + std::to_string(meta.json.size()) + " bytes; at most 240 fit in a slot");
  }
  Header& h = owner_->header();
  SlotRecord& rec = h.slots[slot_];
  FrameInfo info;
  info.slot = slot_;
  info.frame_id = atomic(h.frames_published).load(std::memory_order_relaxed) + 1;
  info.publish_realtime_ns = realtime_ns();
  info.publish_monotonic_ns = monotonic_ns();
  info.seq = old_seq_ + 2;
  info.meta = meta;
  info.device_valid = device_valid_;

  rec.frame_id = info.frame_id;
  rec.publish_realtime_ns = info.publish_realtime_ns;
  rec.publish_monotonic_ns = info.publish_monotonic_ns;
  rec.flags = format::kSlotHostValid | (device_valid_ ? format::kSlotDeviceValid : 0u);
  rec.object_count = meta.object_count;
  rec.diameter = meta.diameter;
  rec.meta_len = static_cast<std::uint32_t>(meta.json.size());
  std::memset(rec.meta, 0, sizeof rec.meta);
  std::memcpy(rec.meta, meta.json.data(), meta.json.size());

  atomic(rec.seq).store(info.seq, std::memory_order_release);
  atomic(h.latest_slot).store(slot_, std::memory_order_release);
  atomic(h.frames_published).store(info.frame_id, std::memory_order_release);
  done_ = true;
  owner_->writing_ = false;
  owner_->wake_readers();
  return info;
}

// Stream

Stream::Stream(std::string name, SegmentOptions options) : name_(std::move(name)), options_(options) {
  validate_name(name_);
}

FrameInfo Stream::publish(const TensorDesc& desc, std::span<const std::byte> data, const FrameMeta& meta,
                          std::span<const std::uint64_t> keep) {
  if (!writer_ || !writer_->desc().same_layout(desc)) {
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
