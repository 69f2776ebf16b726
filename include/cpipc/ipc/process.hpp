// Identity of a process that survives pid reuse and reboots.
#pragma once

#include <sys/types.h>
#include <array>
#include <cstdint>

namespace cpipc::ipc {

struct ProcessIdentity {
  pid_t pid = 0;
  std::uint64_t start_ticks = 0;  // /proc/<pid>/stat field 22 (clock ticks since boot)
  std::array<std::uint8_t, 16> boot_id{};

  // The identity of the calling process.
  static ProcessIdentity self();
};

// The boot id of the running kernel (/proc/sys/kernel/random/boot_id).
[[nodiscard]] std::array<std::uint8_t, 16> current_boot_id();

// Start time of `pid` in clock ticks since boot, or 0 if it does not exist.
[[nodiscard]] std::uint64_t process_start_ticks(pid_t pid) noexcept;

// True if the process `id` names is still running on this boot (not a
// different process that got the same pid).
[[nodiscard]] bool is_alive(const ProcessIdentity& id) noexcept;

// Nanoseconds of CLOCK_MONOTONIC and CLOCK_REALTIME.
[[nodiscard]] std::uint64_t monotonic_ns() noexcept;
[[nodiscard]] std::uint64_t realtime_ns() noexcept;

}  // namespace cpipc::ipc
