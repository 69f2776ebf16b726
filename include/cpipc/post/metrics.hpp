// Segmentation quality against a reference, as Cellpose's metrics compute it.
#pragma once

#include <cstdint>
#include <span>

namespace cpipc::post {

struct MatchCounts {
  std::int64_t true_positives = 0;   // pairs matched at IoU > 0.5
  std::int64_t false_positives = 0;  // predicted objects without a match
  std::int64_t false_negatives = 0;  // reference objects without a match
  // Cellpose's average_precision at IoU 0.5: TP / (TP + FP + FN); 1 when
  // both images are empty.
  [[nodiscard]] double ap() const noexcept;
};

// Matches objects of two label images of the same size (0 = background;
// labels need not be consecutive) at IoU > 0.5. Above 0.5 a match is
// unique, so this is the optimal matching Cellpose's Hungarian step finds.
[[nodiscard]] MatchCounts match_at_iou50(std::span<const std::uint32_t> reference,
                                         std::span<const std::uint32_t> predicted);

}  // namespace cpipc::post
