// The subcommands of cpipc-torch.
#pragma once

#include <CLI/CLI.hpp>

namespace cpipc::cli {

// Thrown by a subcommand that has already reported its errors (one line
// each) and only needs the process to exit with `status`.
struct ExitStatus {
  int status;
};

void register_segment(CLI::App& app);

}  // namespace cpipc::cli
