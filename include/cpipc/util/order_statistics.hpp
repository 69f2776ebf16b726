// Exact order statistics of float32 values in two linear passes: what the
// 1st/99th percentiles of an image need (preprocessing, outline pictures)
// without sorting or partially sorting a copy of a million values.
#pragma once

#include <array>
#include <cstddef>

namespace cpipc::util {

// The values of rank ranks[i] (0-based, ascending order; any order of
// ranks, each < n) among the finite or infinite (not NaN) values[0, n).
// One pass counts the values' top 16 key bits, a second gathers the values
// of the (at most R) buckets that hold the ranks, and a selection within
// each finds them. Instantiated for R = 2 and 4.
template <std::size_t R>
[[nodiscard]] std::array<float, R> order_statistics(const float* values, std::size_t n,
                                                    const std::array<std::size_t, R>& ranks);

}  // namespace cpipc::util
