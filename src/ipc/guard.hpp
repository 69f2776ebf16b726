// SIGBUS-safe access to a mapping another process can shrink.
//
// A shm object truncated by someone else makes every access past its new end
// raise SIGBUS. A process-wide handler (installed once, chaining to the
// previous one for faults it does not own) turns a SIGBUS inside a guarded
// region of the faulting thread into a siglongjmp back to guarded(), which
// returns false. Guarded operations must be noexcept and own nothing with a
// destructor (plain loads, stores, atomics, memcpy): the jump skips them.
// A SIGBUS handler a program installs after ours must chain to the previous
// one (ours), or truncated segments kill it again.
#pragma once

#include <setjmp.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <type_traits>

#include "cpipc/error.hpp"
#include "cpipc/ipc/detail/segment_state.hpp"

namespace cpipc::ipc::detail {

struct GuardFrame {
  sigjmp_buf env;
  const std::byte* lo;
  const std::byte* hi;
  GuardFrame* prev;
};

// This thread's innermost guarded region (the handler reads it).
GuardFrame*& guard_top() noexcept;
// Installs the SIGBUS handler once per process.
void install_sigbus_handler() noexcept;

// Runs fn() and returns true, or returns false if a SIGBUS hit
// [base, base + bytes) while it ran.
template <class F>
[[nodiscard]] bool guarded(const std::byte* base, std::size_t bytes, F&& fn) noexcept {
  static_assert(noexcept(fn()), "a guarded operation must not throw");
  install_sigbus_handler();
  GuardFrame*& top = guard_top();
  GuardFrame frame;
  frame.lo = base;
  frame.hi = base + bytes;
  frame.prev = top;
  // savemask 0: the handler runs with SA_NODEFER, so the mask is unchanged
  // when it jumps, and no sigprocmask call is needed per operation.
  if (sigsetjmp(frame.env, 0) != 0) {
    top = frame.prev;
    return false;
  }
  top = &frame;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  top = frame.prev;
  return true;
}

// The error for a segment whose object shrank under us.
[[nodiscard]] Error truncated_error(const SegmentState& s);

// Runs fn() on the segment's mapping; throws truncated_error() on SIGBUS.
// Returns what fn returns (a trivially copyable value).
template <class F>
auto access(const SegmentState& s, F&& fn) -> decltype(fn()) {
  using R = decltype(fn());
  if constexpr (std::is_void_v<R>) {
    if (!guarded(s.map.data(), s.map.size(), fn)) throw truncated_error(s);
  } else {
    static_assert(std::is_trivially_copyable_v<R> && std::is_trivially_destructible_v<R>);
    R result{};
    if (!guarded(s.map.data(), s.map.size(), [&]() noexcept { result = fn(); })) throw truncated_error(s);
    return result;
  }
}

}  // namespace cpipc::ipc::detail
