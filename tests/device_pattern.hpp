// The pattern device_peer writes into frame `frame_id`, element `i`: every
// element of every frame differs, so a stale or torn frame shows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cpipc::test {

inline constexpr int kPatternSide = 512;

#ifdef __CUDACC__
__host__ __device__
#endif
    inline std::uint32_t
    device_pattern(std::uint64_t frame_id, std::size_t i) {
  return static_cast<std::uint32_t>(frame_id * 2654435761u) ^ static_cast<std::uint32_t>(i * 40503u + 1u);
}

}  // namespace cpipc::test
