// Flows to masks, end to end, in Cellpose's order.
#include <cmath>
#include <string>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"

namespace cpipc::dynamics {

namespace {

void check(const Flows& f, const Params& p) {
  if (f.height < 0 || f.width < 0) throw Error(Errc::invalid_argument, "negative image size");
  const std::size_t n = static_cast<std::size_t>(f.height) * static_cast<std::size_t>(f.width);
  if (f.dy.size() != n || f.dx.size() != n || f.cellprob.size() != n) {
    throw Error(Errc::invalid_argument, "flows and cellprob must all be " + std::to_string(f.height) + " x " +
                                            std::to_string(f.width) + " (got " + std::to_string(f.dy.size()) + ", " +
                                            std::to_string(f.dx.size()) + " and " + std::to_string(f.cellprob.size()) +
                                            " values)");
  }
  if (p.niter < 0) throw Error(Errc::invalid_argument, "niter must be >= 0");
  if (!(p.max_size_fraction > 0)) throw Error(Errc::invalid_argument, "max_size_fraction must be > 0");
  if (!std::isfinite(p.cellprob_threshold) || !std::isfinite(p.flow_threshold) || p.flow_threshold < 0) {
    throw Error(Errc::invalid_argument, "cellprob_threshold and flow_threshold must be finite, flow_threshold >= 0");
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(f.dy[i]) || !std::isfinite(f.dx[i]) || !std::isfinite(f.cellprob[i])) {
      throw Error(Errc::invalid_argument, "flows hold NaN or infinite values (first at pixel " + std::to_string(i) +
                                              "); check the network's output");
    }
  }
}

}  // namespace

Labels masks_from_flows(const Flows& flows, const Params& params) {
  check(flows, params);
  Labels labels;
  labels.height = flows.height;
  labels.width = flows.width;
  const std::size_t n = static_cast<std::size_t>(flows.height) * static_cast<std::size_t>(flows.width);
  std::vector<std::int64_t> pixels;
  for (std::size_t i = 0; i < n; ++i) {
    if (flows.cellprob[i] > params.cellprob_threshold) pixels.push_back(static_cast<std::int64_t>(i));
  }
  if (pixels.empty()) {
    labels.data.assign(n, 0);
    return labels;
  }
  const Positions end = follow_flows(flows, pixels, params.cellprob_threshold, params.niter);
  labels = masks_from_positions(end, pixels, flows.height, flows.width, params.max_size_fraction);
  if (labels.count > 0 && params.flow_threshold > 0) remove_bad_flow_masks(labels, flows, params.flow_threshold);
  fill_holes_and_remove_small_masks(labels, params.min_size);
  return labels;
}

}  // namespace cpipc::dynamics
