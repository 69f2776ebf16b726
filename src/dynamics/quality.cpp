// Flow-error quality control: a mask whose own flows disagree with the
// network's is probably not a cell.
#include "cpipc/dynamics/dynamics.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

std::vector<double> flow_errors(const Labels& labels, const Flows& flows) {
  const detail::DoubleFlows mu = detail::unit_flows(labels);
  std::vector<double> sum(static_cast<std::size_t>(labels.count) + 1, 0.0);
  std::vector<std::int64_t> n(sum.size(), 0);
  for (std::size_t i = 0; i < labels.data.size(); ++i) {
    const std::uint32_t l = labels.data[i];
    if (l == 0) continue;
    // Cellpose: dP_net / 5. in float32, then compared in float64.
    const double ey = mu.dy[i] - static_cast<double>(flows.dy[i] / 5.0f);
    const double ex = mu.dx[i] - static_cast<double>(flows.dx[i] / 5.0f);
    sum[l] += ey * ey + ex * ex;
    ++n[l];
  }
  std::vector<double> err(labels.count, 0.0);
  for (std::uint32_t l = 1; l <= labels.count; ++l) err[l - 1] = n[l] ? sum[l] / static_cast<double>(n[l]) : 0.0;
  return err;
}

void remove_bad_flow_masks(Labels& labels, const Flows& flows, float threshold) {
  if (labels.count == 0) return;
  const std::vector<double> err = flow_errors(labels, flows);
  std::vector<bool> drop(static_cast<std::size_t>(labels.count) + 1, false);
  bool any = false;
  for (std::uint32_t l = 1; l <= labels.count; ++l) {
    if (err[l - 1] > static_cast<double>(threshold)) drop[l] = any = true;
  }
  if (any) detail::drop_labels(labels.data, drop);
  renumber(labels);
}

}  // namespace cpipc::dynamics
