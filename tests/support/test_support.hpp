// What the tests share: unique segment names, the leak check on /dev/shm,
// temporary directories, and running the real cpipc binary.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cpipc::test {

// The built programs the tests start (set by tests/CMakeLists.txt).
[[nodiscard]] std::string cpipc_binary();
[[nodiscard]] std::string segment_peer_binary();

// "t<pid>-": every segment name a test process makes starts with it, so the
// leak check can tell its own objects from anyone else's.
[[nodiscard]] std::string name_prefix();

// A fresh segment name for the running test: "t<pid>-<test>-<n><tag>".
[[nodiscard]] std::string unique_name(std::string_view tag = "");

// True if the shm object of segment `name` exists (/dev/shm/cpipc.<uid>.<name>).
[[nodiscard]] bool shm_exists(std::string_view name);

// Segment names of this process's objects still in /dev/shm.
[[nodiscard]] std::vector<std::string> leftover_segments();

// A directory under $TMPDIR (or /tmp), removed with its contents when it goes.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Sets environment variable `name` to `value` for its lifetime, then puts
// back what was there (or unsets it).
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value);
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv();

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// What a finished command left: exit status (128+N for signal N), stdout, stderr.
struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;

  // stderr split into lines (a final newline does not start another line).
  [[nodiscard]] std::vector<std::string> err_lines() const;
};

// Expects a failed command: `status`, and exactly one line on stderr that
// starts with "cpipc: error: " (what every cpipc failure prints).
void expect_failure(const CommandResult& r, int status);

// An address-space limit (`ulimit -v`, KiB) for a cpipc process that loads
// LibTorch on the CPU: what a started `cpipc serve --device cpu` maps (2.9 GB
// with the CPU torch wheel here, more where LibTorch's CUDA libraries are
// installed), plus 1.6 GB to work in: enough for small images, too little
// for large ones. Measured once per test process.
[[nodiscard]] std::uint64_t torch_address_space_kib();

// Runs the real cpipc binary with `args` to completion; fails the test if
// it does not finish within `timeout`. `shell` runs in the /bin/sh that
// execs cpipc, first (e.g. "ulimit -v 4000000" to limit its memory).
[[nodiscard]] CommandResult run_cpipc(const std::vector<std::string>& args,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                      const std::string& shell = "");

// The key=value words of a result line ("read frames=3 torn=0" -> {frames: 3, torn: 0}).
[[nodiscard]] std::map<std::string, std::string> fields(const std::string& line);
// fields(line)[key] as a number; fails the test (and returns 0) if missing.
[[nodiscard]] std::uint64_t number_field(const std::map<std::string, std::string>& f, const std::string& key);

[[nodiscard]] std::vector<std::byte> read_file_bytes(const std::string& path);

}  // namespace cpipc::test
