// How much memory this machine can still give, for refusing work that would
// not fit with a message rather than an OOM kill half-way.
#pragma once

#include <cstdint>
#include <string>

namespace cpipc::util {

// What this process can still allocate, in bytes: the least of the machine's
// MemAvailable, its cgroup's memory.max headroom and its RLIMIT_AS headroom
// (a container or `ulimit -v` is as real a limit as the RAM). 0 if
// /proc/meminfo cannot be read (callers then do not check).
[[nodiscard]] std::uint64_t available_memory() noexcept;

// "1.5 GiB"
[[nodiscard]] std::string gib_string(double bytes);

}  // namespace cpipc::util
