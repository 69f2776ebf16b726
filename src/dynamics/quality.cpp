// Flow-error quality control: a mask whose own flows disagree with the
// network's is probably not a cell.
#include <memory>

#include "cpipc/dynamics/dynamics.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

namespace cpipc::dynamics {

std::vector<double> flow_errors(const Labels& labels, const Flows& flows) {
  if (labels.count == 0) return {};
  const std::vector<detail::Box> boxes = detail::bounding_boxes(labels.data, labels.height, labels.width, labels.count);
  // Scratch for the heat: only mask pixels are written and read.
  const std::unique_ptr<double[]> temp(new double[labels.data.size()]);
  return detail::flow_errors(labels, flows, boxes, temp.get());
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

namespace detail {

void remove_bad_flow_masks(Labels& labels, const Flows& flows, float threshold, Stats& stats, double* temp) {
  if (labels.count == 0) return;
  const std::vector<double> err = flow_errors(labels, flows, stats.boxes, temp);
  std::vector<bool> drop(static_cast<std::size_t>(labels.count) + 1, false);
  for (std::uint32_t l = 1; l <= labels.count; ++l) drop[l] = err[l - 1] > static_cast<double>(threshold);
  drop_and_compact(labels, drop, stats);
}

}  // namespace detail

}  // namespace cpipc::dynamics
