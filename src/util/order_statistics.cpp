#include "cpipc/util/order_statistics.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace cpipc::util {

namespace {

// Float bits as an unsigned key in the floats' order (negatives reversed).
std::uint32_t order_key(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  return (u & 0x80000000u) != 0 ? ~u : u | 0x80000000u;
}

}  // namespace

template <std::size_t R>
std::array<float, R> order_statistics(const float* values, std::size_t n, const std::array<std::size_t, R>& ranks) {
  std::vector<std::uint32_t> count(std::size_t{1} << 16, 0);
  for (std::size_t i = 0; i < n; ++i) ++count[order_key(values[i]) >> 16];
  // Each rank's bucket (the distinct ones in `buckets`; the unused entries
  // hold a key no value has) and its rank inside.
  std::array<std::uint32_t, R> buckets;
  buckets.fill(0x10000u);
  std::array<std::size_t, R> which{};
  std::array<std::size_t, R> inside{};
  std::array<std::size_t, R> order{};  // ranks ascending (two percentiles may share one)
  for (std::size_t r = 0; r < R; ++r) order[r] = r;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ranks[a] < ranks[b]; });
  std::size_t distinct = 0;
  std::size_t below = 0;
  std::uint32_t b = 0;
  for (const std::size_t r : order) {
    while (below + count[b] <= ranks[r]) below += count[b++];
    if (distinct == 0 || buckets[distinct - 1] != b) buckets[distinct++] = b;
    which[r] = distinct - 1;
    inside[r] = ranks[r] - below;
  }
  std::array<std::vector<float>, R> gathered;
  for (std::size_t k = 0; k < distinct; ++k) gathered[k].reserve(count[buckets[k]]);
  // Most blocks hold none of the wanted values: a vectorised test against
  // every bucket skips them.
  constexpr std::size_t kBlock = 16;
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t end = std::min(n, start + kBlock);
    int any = 0;
    for (std::size_t i = start; i < end; ++i) {
      const std::uint32_t key = order_key(values[i]) >> 16;
      for (std::size_t k = 0; k < R; ++k) any |= static_cast<int>(key == buckets[k]);
    }
    if (any == 0) continue;
    for (std::size_t i = start; i < end; ++i) {
      const std::uint32_t key = order_key(values[i]) >> 16;
      for (std::size_t k = 0; k < distinct; ++k) {
        if (key == buckets[k]) gathered[k].push_back(values[i]);
      }
    }
  }
  std::array<float, R> out{};
  for (std::size_t r = 0; r < R; ++r) {
    std::vector<float>& g = gathered[which[r]];
    std::nth_element(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(inside[r]), g.end());
    out[r] = g[inside[r]];
  }
  return out;
}

template std::array<float, 2> order_statistics<2>(const float*, std::size_t, const std::array<std::size_t, 2>&);
template std::array<float, 4> order_statistics<4>(const float*, std::size_t, const std::array<std::size_t, 4>&);

}  // namespace cpipc::util
