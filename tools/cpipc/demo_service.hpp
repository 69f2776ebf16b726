// The service half of `cpipc demo`.
#pragma once

#include <string>

namespace cpipc::cli {

// Serves the embedded network in a producer process, submits every *.tif in
// `samples_dir` from this process, runs save/stats/outlines consumers on
// each result at once, prints a summary, and checks that nothing is left.
void run_service_demo(const std::string& out_dir, const std::string& samples_dir, const std::string& torch_program);

}  // namespace cpipc::cli
