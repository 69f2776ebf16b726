#include "cpipc/ipc/reader.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/ipc/process.hpp"
#include "sync.hpp"

namespace cpipc::ipc {

using detail::atomic;
using format::Header;
using format::SlotRecord;

namespace {

constexpr std::uint64_t kLivenessPollNs = 100'000'000;  // producer death noticed within 0.1 s
constexpr int kAttachRetries = 50;                      // x 5 ms while a segment is being created

FrameInfo info_from(const SlotRecord& rec, std::uint32_t slot, std::uint64_t seq) {
  FrameInfo info;
  info.slot = slot;
  info.seq = seq;
  info.frame_id = rec.frame_id;
  info.publish_realtime_ns = rec.publish_realtime_ns;
  info.publish_monotonic_ns = rec.publish_monotonic_ns;
  info.device_valid = (rec.flags & format::kSlotDeviceValid) != 0;
  info.meta.object_count = rec.object_count;
  info.meta.diameter = rec.diameter;
  const std::size_t len = std::min<std::size_t>(rec.meta_len, format::kMetaBytes);
  info.meta.json.assign(reinterpret_cast<const char*>(rec.meta), len);
  return info;
}

}  // namespace

SegmentReader SegmentReader::attach(std::string_view name) {
  const std::string object = shm_object_name(name);
  SegmentReader r;
  r.name_ = std::string(name);
  for (int attempt = 0;; ++attempt) {
    r.fd_ = detail::UniqueFd(::shm_open(object.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (r.fd_.get() < 0) {
      const int err = errno;
      if (err == ENOENT) {
        throw Error(Errc::not_found, "no segment named '" + r.name_ + "'; 'cpipc ls' lists the segments there are");
      }
      throw_errno("cannot open segment '" + r.name_ + "'", err);
    }
    struct stat st {};
    if (::fstat(r.fd_.get(), &st) != 0) throw_errno("fstat of segment '" + r.name_ + "'", errno);
    const auto bytes = static_cast<std::uint64_t>(st.st_size);
    // A producer creates, sizes and fills the header in quick succession:
    // give a segment that is still being created a moment.
    bool incomplete = bytes < format::kHeaderBytes;
    if (!incomplete) {
      r.map_ = detail::Mapping(r.fd_.get(), static_cast<std::size_t>(bytes), /*writable=*/true);
      std::uint64_t magic = atomic(*reinterpret_cast<std::uint64_t*>(r.map_.data())).load(std::memory_order_acquire);
      incomplete = magic == 0;
    }
    if (incomplete && attempt < kAttachRetries) {
      r.map_.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (!r.map_.data()) {
      throw Error(Errc::corrupt, "corrupt segment header: segment '" + r.name_ + "' holds " + std::to_string(bytes) +
                                     " bytes, less than the 4096-byte header; remove it with 'cpipc rm " + r.name_ +
                                     "'");
    }
    try {
      r.layout_ = parse_header({r.map_.data(), r.map_.size()}, bytes);
    } catch (const Error& e) {
      throw Error(e.code(), "segment '" + r.name_ + "': " + e.what());
    }
    return r;
  }
}

Header& SegmentReader::header() const noexcept { return *reinterpret_cast<Header*>(map_.data()); }

void SegmentReader::check_producer() const {
  const auto state = static_cast<format::State>(atomic(header().state).load(std::memory_order_acquire));
  if (state == format::State::closed) {
    throw Error(Errc::producer_gone, "the producer of '" + name_ + "' has ended the stream");
  }
  if (state == format::State::replaced) {
    throw Error(Errc::producer_gone,
                "the producer of '" + name_ + "' re-created it with another shape or dtype; attach again");
  }
  if (!is_alive(layout_.producer)) {
    throw Error(Errc::producer_gone, "the producer of '" + name_ + "' (pid " + std::to_string(layout_.producer.pid) +
                                         ") is gone; 'cpipc gc' removes its segments");
  }
}

std::optional<FrameInfo> SegmentReader::read_slot_info(std::uint32_t slot, std::uint64_t seq) const {
  const SlotRecord& live = header().slots[slot];
  SlotRecord rec;
  std::memcpy(&rec, &live, sizeof rec);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (atomic(const_cast<SlotRecord&>(live).seq).load(std::memory_order_relaxed) != seq) return std::nullopt;
  return info_from(rec, slot, seq);
}

namespace {
// Backs off a reader that keeps losing the race with the producer, and makes
// sure a producer that died mid-write (slot left odd) cannot trap it.
void contended(const SegmentReader& reader, int attempt) {
  if (attempt < 64) return;
  if (attempt % 256 == 0) reader.check_producer();
  std::this_thread::sleep_for(std::chrono::microseconds(50));
}
}  // namespace

std::optional<SlotExport> SegmentReader::slot_export(std::uint32_t slot) const {
  if (slot >= layout_.slot_count) {
    throw Error(Errc::invalid_argument, "segment '" + name_ + "' has no slot " + std::to_string(slot));
  }
  if (layout_.export_kind != format::ExportKind::cuda_ipc) return std::nullopt;
  // Written before the magic and never again: a plain copy is a stable one.
  const SlotRecord& rec = header().slots[slot];
  SlotExport e;
  std::memcpy(e.mem_handle.data(), rec.ipc_mem_handle, format::kHandleBytes);
  std::memcpy(e.event_handle.data(), rec.ipc_event_handle, format::kHandleBytes);
  e.device_offset = rec.device_offset;
  e.device_bytes = rec.device_bytes;
  const std::uint64_t frame = layout_.desc.nbytes();
  if (e.device_bytes < frame || e.device_offset > e.device_bytes - frame) {
    throw Error(Errc::corrupt, "segment '" + name_ + "' slot " + std::to_string(slot) +
                                   ": its device frame does not fit its device buffer");
  }
  return e;
}

std::optional<FrameInfo> SegmentReader::latest_info() const {
  Header& h = header();
  for (int attempt = 0;; ++attempt) {
    const std::uint32_t slot = atomic(h.latest_slot).load(std::memory_order_acquire);
    if (slot == format::kNoSlot) return std::nullopt;
    if (slot >= layout_.slot_count) throw Error(Errc::corrupt, "segment '" + name_ + "': latest_slot out of range");
    const std::uint64_t seq = atomic(h.slots[slot].seq).load(std::memory_order_acquire);
    if (seq != 0 && seq % 2 == 0) {
      if (auto info = read_slot_info(slot, seq)) {
        if (!(h.slots[slot].flags & format::kSlotHostValid)) return std::nullopt;  // abandoned write
        return info;
      }
    }
    contended(*this, attempt);
  }
}

std::optional<FrameInfo> SegmentReader::copy_latest(std::vector<std::byte>& out) const {
  Header& h = header();
  const std::size_t nbytes = layout_.desc.nbytes();
  for (int attempt = 0;; ++attempt) {
    const std::uint32_t slot = atomic(h.latest_slot).load(std::memory_order_acquire);
    if (slot == format::kNoSlot) return std::nullopt;
    if (slot >= layout_.slot_count) throw Error(Errc::corrupt, "segment '" + name_ + "': latest_slot out of range");
    auto seq_ref = atomic(h.slots[slot].seq);
    const std::uint64_t seq = seq_ref.load(std::memory_order_acquire);
    if (seq != 0 && seq % 2 == 0) {
      SlotRecord rec;
      std::memcpy(&rec, &h.slots[slot], sizeof rec);
      out.resize(nbytes);
      if (nbytes) std::memcpy(out.data(), map_.data() + layout_.slot_offset(slot), nbytes);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_ref.load(std::memory_order_relaxed) == seq) {
        if (!(rec.flags & format::kSlotHostValid)) return std::nullopt;  // abandoned write
        return info_from(rec, slot, seq);
      }
    }
    contended(*this, attempt);
  }
}

std::optional<FrameInfo> SegmentReader::copy_frame(std::uint32_t slot, std::uint64_t seq,
                                                   std::vector<std::byte>& out) const {
  if (slot >= layout_.slot_count || seq == 0 || seq % 2 != 0) return std::nullopt;
  Header& h = header();
  auto seq_ref = atomic(h.slots[slot].seq);
  if (seq_ref.load(std::memory_order_acquire) != seq) return std::nullopt;
  SlotRecord rec;
  std::memcpy(&rec, &h.slots[slot], sizeof rec);
  const std::size_t nbytes = layout_.desc.nbytes();
  out.resize(nbytes);
  if (nbytes) std::memcpy(out.data(), map_.data() + layout_.slot_offset(slot), nbytes);
  std::atomic_thread_fence(std::memory_order_acquire);
  // Seqlock: the frame is ours only if nobody started writing the slot meanwhile.
  if (seq_ref.load(std::memory_order_relaxed) != seq || !(rec.flags & format::kSlotHostValid)) return std::nullopt;
  return info_from(rec, slot, seq);
}

std::optional<FrameLease> SegmentReader::lease_latest(std::chrono::milliseconds duration) const {
  Header& h = header();
  const std::uint64_t now = monotonic_ns();
  const std::uint64_t deadline = now + static_cast<std::uint64_t>(duration.count()) * 1'000'000ull;
  // Claim a free or expired entry by moving its deadline into the future: the
  // CAS on expires_ns decides between readers racing for the same entry.
  std::uint32_t entry = format::kLeaseCount;
  for (std::uint32_t e = 0; e < format::kLeaseCount && entry == format::kLeaseCount; ++e) {
    auto expires = atomic(h.leases[e].expires_ns);
    std::uint64_t seen = expires.load(std::memory_order_acquire);
    if (seen <= now && expires.compare_exchange_strong(seen, deadline, std::memory_order_acq_rel)) entry = e;
  }
  if (entry == format::kLeaseCount) {
    throw Error(Errc::system, "all 16 lease entries of segment '" + name_ +
                                  "' are held by live readers; release leases or use copies");
  }
  format::LeaseRecord& lease = h.leases[entry];
  atomic(lease.slot).store(format::kNoSlot, std::memory_order_relaxed);
  atomic(lease.pid).store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
  const auto release = [&] {
    atomic(lease.slot).store(format::kNoSlot, std::memory_order_release);
    std::uint64_t mine = deadline;
    atomic(lease.expires_ns).compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
  };

  for (int attempt = 0;; ++attempt) {
    const std::uint32_t slot = atomic(h.latest_slot).load(std::memory_order_acquire);
    if (slot == format::kNoSlot) {
      release();
      return std::nullopt;
    }
    if (slot >= layout_.slot_count) {
      release();
      throw Error(Errc::corrupt, "segment '" + name_ + "': latest_slot out of range");
    }
    auto seq = atomic(h.slots[slot].seq);
    const std::uint64_t before = seq.load(std::memory_order_acquire);
    if (before != 0 && before % 2 == 0) {
      // Store the lease, then re-read seq (seq_cst both): the producer stores
      // an odd seq, then reads the leases. One of us sees the other.
      atomic(lease.slot).store(slot, std::memory_order_seq_cst);
      if (seq.load(std::memory_order_seq_cst) == before) {
        auto info = read_slot_info(slot, before);
        if (info && !(h.slots[slot].flags & format::kSlotHostValid)) {
          release();
          return std::nullopt;
        }
        if (info) {
          HostView view{map_.data() + layout_.slot_offset(slot), layout_.desc};
          return FrameLease(*this, entry, view, std::move(*info));
        }
      }
    }
    try {
      contended(*this, attempt);
    } catch (...) {
      release();
      throw;
    }
  }
}

FrameInfo SegmentReader::wait_next(std::uint64_t after_frame_id, std::chrono::milliseconds timeout) const {
  Header& h = header();
  const std::uint64_t deadline = monotonic_ns() + static_cast<std::uint64_t>(timeout.count()) * 1'000'000ull;
  bool quiet = false;  // a whole poll interval passed without a publish
  for (;;) {
    const std::uint32_t word = atomic(h.notify).load(std::memory_order_acquire);
    if (atomic(h.frames_published).load(std::memory_order_acquire) > after_frame_id) {
      if (auto info = latest_info(); info && info->frame_id > after_frame_id) return *info;
    }
    // The state word is one load; the /proc look-up behind is_alive() costs
    // microseconds, so it runs only when the stream has gone quiet.
    const auto state = static_cast<format::State>(atomic(h.state).load(std::memory_order_acquire));
    if (state != format::State::live || quiet) check_producer();
    const std::uint64_t now = monotonic_ns();
    if (now >= deadline) {
      throw Error(Errc::timed_out, "no new frame on '" + name_ + "' within " + std::to_string(timeout.count()) + " ms");
    }
    const std::uint64_t pause = std::min(deadline - now, kLivenessPollNs);
    atomic(h.waiters).fetch_add(1, std::memory_order_seq_cst);
    detail::futex_wait(h.notify, word, pause);
    atomic(h.waiters).fetch_sub(1, std::memory_order_seq_cst);
    quiet = monotonic_ns() - now >= pause;
  }
}

SegmentStatus SegmentReader::status() const {
  Header& h = header();
  SegmentStatus s;
  s.layout = layout_;
  s.state = static_cast<format::State>(atomic(h.state).load(std::memory_order_acquire));
  s.producer_alive = is_alive(layout_.producer);
  s.frames_published = atomic(h.frames_published).load(std::memory_order_acquire);
  s.lease_overrides = atomic(h.lease_overrides).load(std::memory_order_acquire);
  const std::uint64_t now = monotonic_ns();
  for (auto& lease : h.leases) {
    if (atomic(lease.expires_ns).load(std::memory_order_acquire) > now) ++s.active_leases;
  }
  if (s.state == format::State::live || s.frames_published > 0) s.latest = latest_info();
  return s;
}

// FrameLease

FrameLease::FrameLease(const SegmentReader& reader, std::uint32_t entry, HostView view, FrameInfo info)
    : reader_(&reader), entry_(entry), view_(view), info_(std::move(info)) {
  expires_ns_ = atomic(reader.header().leases[entry].expires_ns).load(std::memory_order_relaxed);
}

FrameLease::FrameLease(FrameLease&& other) noexcept
    : reader_(std::exchange(other.reader_, nullptr)),
      entry_(other.entry_),
      view_(other.view_),
      info_(std::move(other.info_)),
      expires_ns_(other.expires_ns_) {}

FrameLease& FrameLease::operator=(FrameLease&& other) noexcept {
  if (this != &other) {
    release();
    reader_ = std::exchange(other.reader_, nullptr);
    entry_ = other.entry_;
    view_ = other.view_;
    info_ = std::move(other.info_);
    expires_ns_ = other.expires_ns_;
  }
  return *this;
}

FrameLease::~FrameLease() { release(); }

void FrameLease::release() noexcept {
  if (!reader_) return;
  format::LeaseRecord& lease = reader_->header().leases[entry_];
  atomic(lease.slot).store(format::kNoSlot, std::memory_order_release);
  std::uint64_t mine = expires_ns_;
  atomic(lease.expires_ns).compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
  reader_ = nullptr;
}

bool FrameLease::valid() const noexcept {
  if (!reader_) return false;
  std::atomic_thread_fence(std::memory_order_acquire);
  return atomic(reader_->header().slots[info_.slot].seq).load(std::memory_order_acquire) == info_.seq;
}

void FrameLease::renew(std::chrono::milliseconds duration) noexcept {
  if (!reader_) return;
  const std::uint64_t next = monotonic_ns() + static_cast<std::uint64_t>(duration.count()) * 1'000'000ull;
  std::uint64_t mine = expires_ns_;
  // Only an entry that is still ours is extended; a lapsed one stays lapsed.
  if (atomic(reader_->header().leases[entry_].expires_ns).compare_exchange_strong(mine, next)) expires_ns_ = next;
}

}  // namespace cpipc::ipc
