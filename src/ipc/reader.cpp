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
#include "guard.hpp"
#include "ownership.hpp"
#include "sync.hpp"

namespace cpipc::ipc {

using detail::access;
using detail::atomic;
using format::Header;
using format::SlotRecord;

namespace {

constexpr std::uint64_t kLivenessPollNs = 100'000'000;  // producer death noticed within 0.1 s

std::uint64_t ns(std::chrono::milliseconds ms) {
  return static_cast<std::uint64_t>(std::max<long long>(0, ms.count())) * 1'000'000ull;
}

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

// One seqlock attempt's raw result, filled inside a guarded region.
struct SlotCopy {
  std::uint32_t slot = format::kNoSlot;
  std::uint64_t seq = 0;
  bool stable = false;  // seq even, non-zero and unchanged across the copy
  SlotRecord rec;
};

}  // namespace

SegmentReader SegmentReader::attach(std::string_view name) {
  const std::string object = shm_object_name(name);
  SegmentReader r;
  r.s_ = std::make_shared<detail::SegmentState>();
  detail::SegmentState& s = *r.s_;
  s.name = std::string(name);
  const std::uint64_t give_up = monotonic_ns() + ns(kCreateGrace);
  for (;;) {
    s.fd = detail::UniqueFd(::shm_open(object.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0));
    if (s.fd.get() < 0) {
      const int err = errno;
      if (err == ENOENT) {
        throw Error(Errc::not_found, "no segment named '" + s.name + "'; 'cpipc ls' lists the segments there are");
      }
      throw_errno("cannot open segment '" + s.name + "'", err);
    }
    struct stat st {};
    if (::fstat(s.fd.get(), &st) != 0) throw_errno("fstat of segment '" + s.name + "'", errno);
    // Before mapping anything: an object another user planted under our
    // name must not feed us data (nor SIGBUS us by shrinking it).
    if (const std::string why = detail::foreign_reason(st); !why.empty()) {
      throw Error(Errc::corrupt, detail::foreign_message(s.name, why));
    }
    const auto bytes = static_cast<std::uint64_t>(st.st_size);
    // A producer creates, sizes and fills the header in quick succession:
    // give a segment that is still being created a moment.
    bool incomplete = bytes < format::kHeaderBytes;
    if (!incomplete) {
      s.map = detail::Mapping(s.fd.get(), static_cast<std::size_t>(bytes), /*writable=*/true);
      incomplete = access(s, [&]() noexcept {
                     return atomic(*reinterpret_cast<std::uint64_t*>(s.map.data())).load(std::memory_order_acquire);
                   }) == 0;
    }
    if (incomplete && monotonic_ns() < give_up) {
      s.map.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (!s.map.data()) {
      throw Error(Errc::corrupt, "corrupt segment header: segment '" + s.name + "' holds " + std::to_string(bytes) +
                                     " bytes, less than the 4096-byte header; remove it with 'cpipc rm " + s.name +
                                     "'");
    }
    // parse_header copies nothing out that could fault later, but reads the
    // header page: copy it under the guard first.
    auto page = std::make_unique<Header>();
    access(s, [&]() noexcept { std::memcpy(page.get(), s.map.data(), sizeof(Header)); });
    try {
      s.layout = parse_header({reinterpret_cast<const std::byte*>(page.get()), sizeof(Header)}, bytes);
    } catch (const Error& e) {
      throw Error(e.code(), "segment '" + s.name + "': " + e.what());
    }
    if (s.layout.total_bytes != s.map.size()) {
      throw Error(Errc::corrupt, "segment '" + s.name + "' changed size while attaching; attach again");
    }
    return r;
  }
}

Header& SegmentReader::header() const noexcept { return *reinterpret_cast<Header*>(s_->map.data()); }

void SegmentReader::check_producer() const {
  const detail::SegmentState& s = *s_;
  // A truncated object says so, not "producer gone": its producer usually
  // stops because of it.
  struct stat st {};
  if (::fstat(s.fd.get(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) < s.map.size()) {
    throw detail::truncated_error(s);
  }
  const auto state = static_cast<format::State>(
      access(s, [&]() noexcept { return atomic(header().state).load(std::memory_order_acquire); }));
  if (state == format::State::closed) {
    throw Error(Errc::producer_gone, "the producer of '" + s.name + "' has ended the stream");
  }
  if (state == format::State::replaced) {
    throw Error(Errc::producer_gone,
                "the producer of '" + s.name +
                    "' re-created it with another shape or dtype, or after its name was unlinked; attach again");
  }
  if (!is_alive(s.layout.producer)) {
    throw Error(Errc::producer_gone, "the producer of '" + s.name + "' (pid " + std::to_string(s.layout.producer.pid) +
                                         ") is gone; 'cpipc gc' removes its segments");
  }
}

std::optional<FrameInfo> SegmentReader::read_slot_info(std::uint32_t slot, std::uint64_t seq) const {
  const SlotRecord& live = header().slots[slot];
  const auto c = access(*s_, [&]() noexcept {
    SlotCopy c;
    std::memcpy(&c.rec, &live, sizeof c.rec);
    std::atomic_thread_fence(std::memory_order_acquire);
    c.stable = atomic(const_cast<SlotRecord&>(live).seq).load(std::memory_order_relaxed) == seq;
    return c;
  });
  if (!c.stable) return std::nullopt;
  return info_from(c.rec, slot, seq);
}

// Backs off a reader that keeps losing the race with the producer; a
// producer that died mid-write (slot left odd) ends it with producer_gone,
// one that is stopped or hung mid-write with timed_out at the deadline.
void SegmentReader::contended(int attempt, std::uint32_t slot, std::uint64_t deadline_ns) const {
  if (attempt < 64) return;
  if (attempt % 256 == 0) check_producer();
  if (monotonic_ns() >= deadline_ns) {
    throw Error(Errc::timed_out, "the producer of '" + s_->name + "' (pid " + std::to_string(s_->layout.producer.pid) +
                                     ") is stuck mid-write: slot " + std::to_string(slot) +
                                     " stayed unreadable past the deadline; try again, or 'cpipc gc' if it is dead");
  }
  std::this_thread::sleep_for(std::chrono::microseconds(50));
}

std::optional<SlotExport> SegmentReader::slot_export(std::uint32_t slot) const {
  const detail::SegmentState& s = *s_;
  if (slot >= s.layout.slot_count) {
    throw Error(Errc::invalid_argument, "segment '" + s.name + "' has no slot " + std::to_string(slot));
  }
  if (s.layout.export_kind != format::ExportKind::cuda_ipc) return std::nullopt;
  // Written before the magic and never again: a plain copy is a stable one.
  const SlotRecord& live = header().slots[slot];
  const auto rec = access(s, [&]() noexcept {
    SlotRecord r;
    std::memcpy(&r, &live, sizeof r);
    return r;
  });
  SlotExport e;
  std::memcpy(e.mem_handle.data(), rec.ipc_mem_handle, format::kHandleBytes);
  std::memcpy(e.event_handle.data(), rec.ipc_event_handle, format::kHandleBytes);
  e.device_offset = rec.device_offset;
  e.device_bytes = rec.device_bytes;
  const std::uint64_t frame = s.layout.desc.nbytes();
  if (e.device_bytes < frame || e.device_offset > e.device_bytes - frame) {
    throw Error(Errc::corrupt, "segment '" + s.name + "' slot " + std::to_string(slot) +
                                   ": its device frame does not fit its device buffer");
  }
  return e;
}

namespace {

// latest_slot out of range, or naming a slot never written (seq 0: the
// producer never points latest_slot there), is a corrupt header.
void check_latest(const detail::SegmentState& s, std::uint32_t slot, std::uint64_t seq) {
  if (slot >= s.layout.slot_count || seq == 0) {
    throw Error(Errc::corrupt, "segment '" + s.name + "': latest_slot " + std::to_string(slot) +
                                   (slot >= s.layout.slot_count ? " is out of range" : " was never written") +
                                   "; remove it with 'cpipc rm " + s.name + "'");
  }
}

}  // namespace

// The latest frame's record, and its bytes into `dst` when `nbytes` > 0,
// read as one seqlock snapshot; retried until `deadline_ns`.
std::optional<FrameInfo> SegmentReader::read_latest(std::byte* dst, std::size_t nbytes,
                                                    std::uint64_t deadline_ns) const {
  const detail::SegmentState& s = *s_;
  Header& h = header();
  for (int attempt = 0;; ++attempt) {
    const auto c = access(s, [&]() noexcept {
      SlotCopy c;
      c.slot = atomic(h.latest_slot).load(std::memory_order_acquire);
      if (c.slot >= s.layout.slot_count) return c;
      auto seq = atomic(h.slots[c.slot].seq);
      c.seq = seq.load(std::memory_order_acquire);
      if (c.seq == 0 || c.seq % 2 != 0) return c;
      std::memcpy(&c.rec, &h.slots[c.slot], sizeof c.rec);
      if (nbytes) std::memcpy(dst, s.map.data() + s.layout.slot_offset(c.slot), nbytes);
      std::atomic_thread_fence(std::memory_order_acquire);
      c.stable = seq.load(std::memory_order_relaxed) == c.seq;
      return c;
    });
    if (c.slot == format::kNoSlot) return std::nullopt;
    if (c.slot >= s.layout.slot_count || c.seq == 0) check_latest(s, c.slot, c.seq);
    if (c.stable) {
      if (!(c.rec.flags & format::kSlotHostValid)) return std::nullopt;  // abandoned write
      return info_from(c.rec, c.slot, c.seq);
    }
    contended(attempt, c.slot, deadline_ns);
  }
}

std::optional<FrameInfo> SegmentReader::latest_info(std::uint64_t deadline_ns) const {
  return read_latest(nullptr, 0, deadline_ns);
}

std::optional<FrameInfo> SegmentReader::copy_latest(std::vector<std::byte>& out,
                                                    std::chrono::milliseconds patience) const {
  out.resize(s_->layout.desc.nbytes());
  return copy_latest(std::span<std::byte>(out), patience);
}

std::optional<FrameInfo> SegmentReader::copy_frame(std::uint32_t slot, std::uint64_t seq,
                                                   std::vector<std::byte>& out) const {
  out.resize(s_->layout.desc.nbytes());
  return copy_frame(slot, seq, std::span<std::byte>(out));
}

namespace {
void check_size(const std::string& name, std::size_t frame, std::size_t buffer) {
  if (frame != buffer) {
    throw Error(Errc::invalid_argument, "a frame of segment '" + name + "' is " + std::to_string(frame) +
                                            " bytes; the buffer given is " + std::to_string(buffer));
  }
}
}  // namespace

std::optional<FrameInfo> SegmentReader::copy_latest(std::span<std::byte> out,
                                                    std::chrono::milliseconds patience) const {
  check_size(s_->name, s_->layout.desc.nbytes(), out.size());
  return read_latest(out.data(), out.size(), monotonic_ns() + ns(patience));
}

std::optional<FrameInfo> SegmentReader::copy_frame(std::uint32_t slot, std::uint64_t seq,
                                                   std::span<std::byte> out) const {
  const detail::SegmentState& s = *s_;
  const std::size_t nbytes = s.layout.desc.nbytes();
  check_size(s.name, nbytes, out.size());
  if (slot >= s.layout.slot_count || seq == 0 || seq % 2 != 0) return std::nullopt;
  Header& h = header();
  std::byte* dst = out.data();
  const auto c = access(s, [&]() noexcept {
    SlotCopy c;
    auto seq_ref = atomic(h.slots[slot].seq);
    if (seq_ref.load(std::memory_order_acquire) != seq) return c;
    std::memcpy(&c.rec, &h.slots[slot], sizeof c.rec);
    if (nbytes) std::memcpy(dst, s.map.data() + s.layout.slot_offset(slot), nbytes);
    std::atomic_thread_fence(std::memory_order_acquire);
    // Seqlock: the frame is ours only if nobody started writing the slot meanwhile.
    c.stable = seq_ref.load(std::memory_order_relaxed) == seq;
    return c;
  });
  if (!c.stable || !(c.rec.flags & format::kSlotHostValid)) return std::nullopt;
  return info_from(c.rec, slot, seq);
}

std::optional<FrameLease> SegmentReader::lease_latest(std::chrono::milliseconds duration,
                                                      std::chrono::milliseconds patience) const {
  const detail::SegmentState& s = *s_;
  Header& h = header();
  const std::uint64_t now = monotonic_ns();
  const std::uint64_t deadline = now + ns(duration);
  const std::uint64_t give_up = now + ns(patience);
  // Claim a free or expired entry by moving its deadline into the future: the
  // CAS on expires_ns decides between readers racing for the same entry.
  const std::uint32_t entry = access(s, [&]() noexcept {
    for (std::uint32_t e = 0; e < format::kLeaseCount; ++e) {
      auto expires = atomic(h.leases[e].expires_ns);
      std::uint64_t seen = expires.load(std::memory_order_acquire);
      if (seen <= now && expires.compare_exchange_strong(seen, deadline, std::memory_order_acq_rel)) {
        atomic(h.leases[e].slot).store(format::kNoSlot, std::memory_order_relaxed);
        atomic(h.leases[e].pid).store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
        return e;
      }
    }
    return format::kLeaseCount;
  });
  if (entry == format::kLeaseCount) {
    throw Error(Errc::system, "all 16 lease entries of segment '" + s.name +
                                  "' are held by live readers; release leases or use copies");
  }
  // From here the entry is ours: a lease object releases it on every path.
  FrameLease held(s_, entry, HostView{}, FrameInfo{});
  held.expires_ns_ = deadline;
  format::LeaseRecord& lease = h.leases[entry];
  for (int attempt = 0;; ++attempt) {
    const auto c = access(s, [&]() noexcept {
      SlotCopy c;
      c.slot = atomic(h.latest_slot).load(std::memory_order_acquire);
      if (c.slot >= s.layout.slot_count) return c;
      auto seq = atomic(h.slots[c.slot].seq);
      c.seq = seq.load(std::memory_order_acquire);
      if (c.seq == 0 || c.seq % 2 != 0) return c;
      // Store the lease, then re-read seq (seq_cst both): the producer stores
      // an odd seq, then reads the leases. One of us sees the other.
      atomic(lease.slot).store(c.slot, std::memory_order_seq_cst);
      if (seq.load(std::memory_order_seq_cst) != c.seq) return c;
      std::memcpy(&c.rec, &h.slots[c.slot], sizeof c.rec);
      std::atomic_thread_fence(std::memory_order_acquire);
      c.stable = seq.load(std::memory_order_relaxed) == c.seq;
      return c;
    });
    if (c.slot == format::kNoSlot) return std::nullopt;
    if (c.slot >= s.layout.slot_count || c.seq == 0) check_latest(s, c.slot, c.seq);
    if (c.stable) {
      if (!(c.rec.flags & format::kSlotHostValid)) return std::nullopt;  // abandoned write
      held.view_ = HostView{s.map.data() + s.layout.slot_offset(c.slot), s.layout.desc};
      held.info_ = info_from(c.rec, c.slot, c.seq);
      return held;
    }
    contended(attempt, c.slot, give_up);
  }
}

FrameInfo SegmentReader::wait_next(std::uint64_t after_frame_id, std::chrono::milliseconds timeout) const {
  const detail::SegmentState& s = *s_;
  Header& h = header();
  const std::uint64_t deadline = monotonic_ns() + ns(timeout);
  bool quiet = false;  // a whole poll interval passed without a publish
  struct Words {
    std::uint32_t notify;
    std::uint64_t frames;
    std::uint32_t state;
  };
  for (;;) {
    const auto w = access(s, [&]() noexcept {
      Words w{};
      w.notify = atomic(h.notify).load(std::memory_order_acquire);
      w.frames = atomic(h.frames_published).load(std::memory_order_acquire);
      w.state = atomic(h.state).load(std::memory_order_acquire);
      return w;
    });
    if (w.frames > after_frame_id) {
      if (auto info = latest_info(monotonic_ns() + ns(kDefaultPatience)); info && info->frame_id > after_frame_id) {
        return *info;
      }
    }
    // The state word is one load; the /proc look-up behind is_alive() costs
    // microseconds, so it runs only when the stream has gone quiet.
    if (static_cast<format::State>(w.state) != format::State::live || quiet) check_producer();
    const std::uint64_t now = monotonic_ns();
    if (now >= deadline) {
      throw Error(Errc::timed_out,
                  "no new frame on '" + s.name + "' within " + std::to_string(timeout.count()) + " ms");
    }
    const std::uint64_t pause = std::min(deadline - now, kLivenessPollNs);
    access(s, [&]() noexcept { atomic(h.waiters).fetch_add(1, std::memory_order_seq_cst); });
    detail::futex_wait(h.notify, w.notify, pause);  // a syscall: EFAULT, never SIGBUS
    access(s, [&]() noexcept { atomic(h.waiters).fetch_sub(1, std::memory_order_seq_cst); });
    quiet = monotonic_ns() - now >= pause;
  }
}

SegmentStatus SegmentReader::status(std::chrono::milliseconds patience) const {
  const detail::SegmentState& s = *s_;
  Header& h = header();
  SegmentStatus st;
  st.layout = s.layout;
  const std::uint64_t now = monotonic_ns();
  struct Counters {
    std::uint32_t state;
    std::uint64_t frames;
    std::uint64_t overrides;
    std::uint32_t leases;
  };
  const auto c = access(s, [&]() noexcept {
    Counters c{};
    c.state = atomic(h.state).load(std::memory_order_acquire);
    c.frames = atomic(h.frames_published).load(std::memory_order_acquire);
    c.overrides = atomic(h.lease_overrides).load(std::memory_order_acquire);
    for (auto& lease : h.leases) {
      if (atomic(lease.expires_ns).load(std::memory_order_acquire) > now) ++c.leases;
    }
    return c;
  });
  st.state = static_cast<format::State>(c.state);
  st.producer_alive = is_alive(s.layout.producer);
  st.frames_published = c.frames;
  st.lease_overrides = c.overrides;
  st.active_leases = c.leases;
  if (st.state == format::State::live || st.frames_published > 0) {
    try {
      st.latest = latest_info(monotonic_ns() + ns(patience));
    } catch (const Error& e) {
      if (e.code() != Errc::timed_out) throw;
      st.stuck = true;
    }
  }
  return st;
}

// FrameLease

FrameLease::FrameLease(std::shared_ptr<const detail::SegmentState> segment, std::uint32_t entry, HostView view,
                       FrameInfo info)
    : segment_(std::move(segment)), entry_(entry), view_(view), info_(std::move(info)) {}

FrameLease::FrameLease(FrameLease&& other) noexcept
    : segment_(std::move(other.segment_)),
      entry_(other.entry_),
      view_(other.view_),
      info_(std::move(other.info_)),
      expires_ns_(other.expires_ns_) {}

FrameLease& FrameLease::operator=(FrameLease&& other) noexcept {
  if (this != &other) {
    release();
    segment_ = std::move(other.segment_);
    entry_ = other.entry_;
    view_ = other.view_;
    info_ = std::move(other.info_);
    expires_ns_ = other.expires_ns_;
  }
  return *this;
}

FrameLease::~FrameLease() { release(); }

namespace {
format::Header& header_of(const detail::SegmentState& s) noexcept {
  return *reinterpret_cast<format::Header*>(s.map.data());
}
}  // namespace

void FrameLease::release() noexcept {
  if (!segment_) return;
  format::LeaseRecord& lease = header_of(*segment_).leases[entry_];
  // A truncated object has no lease table left to clean: nothing to do.
  (void)detail::guarded(segment_->map.data(), segment_->map.size(), [&]() noexcept {
    atomic(lease.slot).store(format::kNoSlot, std::memory_order_release);
    std::uint64_t mine = expires_ns_;
    atomic(lease.expires_ns).compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
  });
  segment_.reset();
}

bool FrameLease::valid() const noexcept {
  if (!segment_) return false;
  const detail::SegmentState& s = *segment_;
  bool same = false;
  // Under the guard: a truncated segment's frame is not valid, and no SIGBUS.
  const bool readable = detail::guarded(s.map.data(), s.map.size(), [&]() noexcept {
    std::atomic_thread_fence(std::memory_order_acquire);
    same = atomic(header_of(s).slots[info_.slot].seq).load(std::memory_order_acquire) == info_.seq;
    // The frame's last byte must still be there: a truncation to just the
    // header leaves the seq intact but the data gone. A truncation cuts a
    // suffix, so if the last byte is there, the whole frame is (no fstat).
    if (same && view_.data && s.layout.desc.nbytes() > 0) {
      (void)*static_cast<const volatile std::byte*>(view_.data + s.layout.desc.nbytes() - 1);
    }
  });
  return readable && same;
}

void FrameLease::renew(std::chrono::milliseconds duration) noexcept {
  if (!segment_) return;
  const std::uint64_t next = monotonic_ns() + static_cast<std::uint64_t>(duration.count()) * 1'000'000ull;
  std::uint64_t mine = expires_ns_;
  bool renewed = false;
  // Only an entry that is still ours is extended; a lapsed one stays lapsed.
  (void)detail::guarded(segment_->map.data(), segment_->map.size(), [&]() noexcept {
    renewed = atomic(header_of(*segment_).leases[entry_].expires_ns).compare_exchange_strong(mine, next);
  });
  if (renewed) expires_ns_ = next;
}

}  // namespace cpipc::ipc
