// Thrown by a subcommand that has already reported its errors (one line
// each) and only needs the process to exit with `status`.
#pragma once

namespace cpipc::cli {

struct ExitStatus {
  int status;
};

}  // namespace cpipc::cli
