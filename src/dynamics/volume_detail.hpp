// Helpers for label volumes whose values may be any uint32 (stitch.cpp,
// fill_holes_3d.cpp): checks, a compact index of the values present,
// renumbering in order of first appearance.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cpipc/error.hpp"

namespace cpipc::dynamics::detail {

inline void check_volume(std::span<const std::uint32_t> labels, int depth, int height, int width, const char* what) {
  if (depth < 0 || height < 0 || width < 0) {
    throw Error(Errc::invalid_argument, std::string(what) + ": negative size");
  }
  const std::size_t n =
      static_cast<std::size_t>(depth) * static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  if (labels.size() != n) {
    throw Error(Errc::invalid_argument, std::string(what) + ": " + std::to_string(labels.size()) +
                                            " labels for a volume of " + std::to_string(depth) + " x " +
                                            std::to_string(height) + " x " + std::to_string(width));
  }
}

// The distinct non-zero values of `labels`, ascending, and per element 0
// (background) or 1 + the index of its value in that list.
struct ValueIndex {
  std::vector<std::uint32_t> values;
  std::vector<std::uint32_t> index;
};

inline ValueIndex index_values(std::span<const std::uint32_t> labels) {
  ValueIndex ix;
  ix.index.assign(labels.size(), 0);
  if (labels.empty()) return ix;
  const std::uint32_t max = *std::max_element(labels.begin(), labels.end());
  if (max == 0) return ix;
  if (max <= labels.size()) {
    // Dense: a table indexed by value, no larger than the labels.
    std::vector<std::uint32_t> of_value(static_cast<std::size_t>(max) + 1, 0);
    for (const std::uint32_t v : labels) of_value[v] = 1;
    of_value[0] = 0;
    for (std::uint32_t v = 1; v <= max; ++v) {
      if (of_value[v]) {
        ix.values.push_back(v);
        of_value[v] = static_cast<std::uint32_t>(ix.values.size());
      }
    }
    for (std::size_t i = 0; i < labels.size(); ++i) ix.index[i] = of_value[labels[i]];
  } else {
    for (const std::uint32_t v : labels) {
      if (v) ix.values.push_back(v);
    }
    std::sort(ix.values.begin(), ix.values.end());
    ix.values.erase(std::unique(ix.values.begin(), ix.values.end()), ix.values.end());
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i]) {
        ix.index[i] = static_cast<std::uint32_t>(std::lower_bound(ix.values.begin(), ix.values.end(), labels[i]) -
                                                 ix.values.begin()) +
                      1;
      }
    }
  }
  return ix;
}

// Renumbers non-zero values 1..N in order of first appearance (fastremap.
// renumber with preserve_zero); returns N.
inline std::uint32_t renumber_by_appearance(std::span<std::uint32_t> labels) {
  if (labels.empty()) return 0;
  std::uint32_t next = 0;
  const std::uint32_t max = *std::max_element(labels.begin(), labels.end());
  if (max <= labels.size()) {
    std::vector<std::uint32_t> to(static_cast<std::size_t>(max) + 1, 0);
    for (std::uint32_t& v : labels) {
      if (!v) continue;
      if (!to[v]) to[v] = ++next;
      v = to[v];
    }
  } else {
    std::unordered_map<std::uint32_t, std::uint32_t> to;
    for (std::uint32_t& v : labels) {
      if (!v) continue;
      const auto [it, added] = to.try_emplace(v, next + 1);
      if (added) ++next;
      v = it->second;
    }
  }
  return next;
}

// The number of distinct non-zero values.
inline std::uint32_t count_objects(std::span<const std::uint32_t> labels) {
  return static_cast<std::uint32_t>(index_values(labels).values.size());
}

}  // namespace cpipc::dynamics::detail
