#pragma once

#include <vector>

#include "cpipc/dynamics/dynamics.hpp"

namespace cpipc::dynamics::detail {

// Unit flows in float64, as Cellpose keeps them for the QC.
struct DoubleFlows {
  std::vector<double> dy;
  std::vector<double> dx;
};
DoubleFlows unit_flows(const Labels& labels);

}  // namespace cpipc::dynamics::detail
