// A child process started with fork/exec, killed and reaped when its owner
// goes out of scope (so a failing test or demo never leaves one behind).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace cpipc::util {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with `argv`. Its stdout is a pipe readable with
  // read_line() when `capture_stdout`; stderr is inherited.
  ChildProcess(const std::vector<std::string>& argv, bool capture_stdout = true);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();  // SIGKILL and reap if still running

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  // One line of the child's stdout without the newline; nullopt at EOF or
  // when `timeout` passes first.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // The rest of stdout until EOF (or timeout).
  std::string read_all(std::chrono::milliseconds timeout);

  void signal(int sig) const noexcept;
  // Waits for exit; returns the exit status, 128+N for a signal, or nullopt
  // on timeout (the child keeps running).
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // SIGKILL, then reap.
  void kill() noexcept;

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
  std::optional<int> status_;
};

// The absolute path of the running executable (/proc/self/exe).
[[nodiscard]] std::string self_executable();

}  // namespace cpipc::util
