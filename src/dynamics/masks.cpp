// Flows to masks, end to end, in Cellpose's order.
#include <algorithm>
#include <cmath>
#include <string>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"
#include "flows_detail.hpp"
#include "labels_detail.hpp"

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
  detail::check_params(p);
  detail::check_finite({f.dy, f.dx, f.cellprob});
}

}  // namespace

Labels masks_from_flows(const Flows& flows, const Params& params) {
  check(flows, params);
  const int h = flows.height;
  const int w = flows.width;
  const std::size_t n = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  const std::vector<std::int64_t> pixels = detail::foreground(flows.cellprob, params.cellprob_threshold);
  if (pixels.empty()) {
    Labels labels;
    labels.height = h;
    labels.width = w;
    labels.data.assign(n, 0);
    return labels;
  }
  // One scratch area for the big buffers, used in turn: the flow field, the
  // histogram of final positions, the heat of the QC.
  const std::size_t field = sizeof(float) * 2 * (static_cast<std::size_t>(h) + 2) * (static_cast<std::size_t>(w) + 2);
  const std::size_t hist =
      sizeof(std::int32_t) * (static_cast<std::size_t>(h) + 2 * detail::kHistPad) * (w + 2 * detail::kHistPad);
  const std::size_t heat = params.flow_threshold > 0 ? sizeof(double) * n : 0;
  detail::Workspace ws;
  void* scratch = ws.get(std::max({field, hist, heat}));

  std::vector<std::int32_t> bins(pixels.size());
  detail::follow_flows(flows, pixels, params.cellprob_threshold, params.niter, static_cast<float*>(scratch), nullptr,
                       nullptr, bins.data());
  detail::Stats stats;
  Labels labels =
      detail::masks_from_bins(bins, pixels, h, w, params.max_size_fraction, static_cast<std::int32_t*>(scratch), stats);
  if (labels.count > 0 && params.flow_threshold > 0) {
    detail::remove_bad_flow_masks(labels, flows, params.flow_threshold, stats, static_cast<double*>(scratch));
  }
  detail::fill_holes_and_remove_small_masks(labels, params.min_size, stats);
  return labels;
}

}  // namespace cpipc::dynamics
