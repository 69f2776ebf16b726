// cpipc's one exception type. Library code throws; the CLI maps the code to
// an exit status and prints the message as one line.
#pragma once

#include <stdexcept>
#include <string>

namespace cpipc {

// Each code is a category a caller can act on; the CLI maps them to exit
// statuses documented in README.md (see exit_status()).
enum class Errc {
  invalid_argument,  // bad name, bad file content, unsupported dtype: exit 2
  not_found,         // no such segment or file: exit 3
  producer_gone,     // the segment's producer exited or was killed: exit 4
  timed_out,         // a wait ran out of time: exit 4
  cancelled,         // a request was cancelled: exit 4
  corrupt,           // a segment whose header fails validation: exit 2
  exists,            // a segment of that name already exists: exit 1
  system,            // an OS call failed (errno in the message): exit 1
  io,                // a file could not be read or written: exit 1
  out_of_memory,     // the work does not fit in (device) memory: exit 5
  overloaded,        // a producer refused more work (queue or client limit): exit 1
};

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

// The exit status the CLI uses for an error of this code.
[[nodiscard]] constexpr int exit_status(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument:
    case Errc::corrupt:
      return 2;
    case Errc::not_found:
      return 3;
    case Errc::producer_gone:
    case Errc::timed_out:
    case Errc::cancelled:
      return 4;
    case Errc::out_of_memory:
      return 5;
    default:
      return 1;
  }
}

// Throws Error(Errc::system) naming the call and errno's text.
[[noreturn]] void throw_errno(const std::string& what, int err);

}  // namespace cpipc
