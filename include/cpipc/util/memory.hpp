// How much memory this machine can still give, for refusing work that would
// not fit with a message rather than an OOM kill half-way.
#pragma once

#include <cstdint>
#include <string>

namespace cpipc::util {

// MemAvailable from /proc/meminfo, in bytes; 0 if it cannot be read.
[[nodiscard]] std::uint64_t available_memory() noexcept;

// "1.5 GiB"
[[nodiscard]] std::string gib_string(double bytes);

}  // namespace cpipc::util
