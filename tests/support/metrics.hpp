// Segmentation metrics for tests, as Cellpose's metrics compute them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace cpipc::test {

// Matched-object AP at IoU 0.5, as Cellpose's average_precision:
// TP / (TP + FP + FN). Above IoU 0.5 a match is unique, so counting the
// pairs above 0.5 is the optimal matching. Labels 1..max, 0 background.
[[nodiscard]] inline double ap50(std::span<const std::uint32_t> truth, std::span<const std::uint32_t> pred) {
  const std::uint32_t nt_count = truth.empty() ? 0 : *std::max_element(truth.begin(), truth.end());
  const std::uint32_t np_count = pred.empty() ? 0 : *std::max_element(pred.begin(), pred.end());
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::int64_t> overlap;
  std::vector<std::int64_t> nt(nt_count + 1, 0), np(np_count + 1, 0);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    ++nt[truth[i]];
    ++np[pred[i]];
    if (truth[i] && pred[i]) ++overlap[{truth[i], pred[i]}];
  }
  // Labels that never occur (gaps in the numbering) are not objects.
  const auto objects = [](const std::vector<std::int64_t>& n) {
    return std::count_if(n.begin() + 1, n.end(), [](std::int64_t v) { return v > 0; });
  };
  std::int64_t tp = 0;
  for (const auto& [key, inter] : overlap) {
    const double iou = static_cast<double>(inter) / static_cast<double>(nt[key.first] + np[key.second] - inter);
    if (iou > 0.5) ++tp;
  }
  const std::int64_t fp = objects(np) - tp, fn = objects(nt) - tp;
  return tp + fp + fn == 0 ? 1.0 : static_cast<double>(tp) / static_cast<double>(tp + fp + fn);
}

}  // namespace cpipc::test
