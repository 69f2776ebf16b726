#include "cpipc/post/metrics.hpp"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "cpipc/error.hpp"

namespace cpipc::post {

double MatchCounts::ap() const noexcept {
  const std::int64_t all = true_positives + false_positives + false_negatives;
  return all == 0 ? 1.0 : static_cast<double>(true_positives) / static_cast<double>(all);
}

MatchCounts match_at_iou50(std::span<const std::uint32_t> reference, std::span<const std::uint32_t> predicted) {
  if (reference.size() != predicted.size()) {
    throw Error(Errc::invalid_argument, "label images of different sizes cannot be matched");
  }
  std::unordered_map<std::uint32_t, std::int64_t> area_ref, area_pred;
  std::unordered_map<std::uint64_t, std::int64_t> overlap;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const std::uint32_t r = reference[i], p = predicted[i];
    if (r) ++area_ref[r];
    if (p) ++area_pred[p];
    if (r && p) ++overlap[(static_cast<std::uint64_t>(r) << 32) | p];
  }
  MatchCounts m;
  for (const auto& [key, inter] : overlap) {
    const std::int64_t uni = area_ref[static_cast<std::uint32_t>(key >> 32)] +
                             area_pred[static_cast<std::uint32_t>(key & 0xffffffffu)] - inter;
    if (2 * inter > uni) ++m.true_positives;
  }
  m.false_positives = static_cast<std::int64_t>(area_pred.size()) - m.true_positives;
  m.false_negatives = static_cast<std::int64_t>(area_ref.size()) - m.true_positives;
  return m;
}

}  // namespace cpipc::post
