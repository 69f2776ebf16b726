// Atomics on header fields in shared memory, and futex waits on them.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

namespace cpipc::ipc::detail {

template <class T>
std::atomic_ref<T> atomic(T& field) noexcept {
  return std::atomic_ref<T>(field);
}

// Wakes every process waiting on `word` (shared futex: the mapping is shared).
inline void futex_wake_all(std::uint32_t& word) noexcept {
  ::syscall(SYS_futex, &word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// Sleeps while `word` == `expected`, at most `timeout_ns`. Spurious wake-ups
// and EAGAIN (the value already changed) are fine: callers re-check.
inline void futex_wait(std::uint32_t& word, std::uint32_t expected, std::uint64_t timeout_ns) noexcept {
  timespec ts{static_cast<time_t>(timeout_ns / 1000000000ull), static_cast<long>(timeout_ns % 1000000000ull)};
  ::syscall(SYS_futex, &word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

}  // namespace cpipc::ipc::detail
