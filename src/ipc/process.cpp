#include "cpipc/ipc/process.hpp"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace cpipc::ipc {

namespace {
int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::array<std::uint8_t, 16> current_boot_id() {
  static const std::array<std::uint8_t, 16> cached = [] {
    std::array<std::uint8_t, 16> id{};
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string text;
    std::getline(in, text);
    std::size_t n = 0;
    for (std::size_t i = 0; i + 1 < text.size() && n < id.size(); ++i) {
      const int hi = hex_value(text[i]);
      const int lo = hex_value(text[i + 1]);
      if (hi < 0 || lo < 0) continue;
      id[n++] = static_cast<std::uint8_t>(hi * 16 + lo);
      ++i;
    }
    return id;
  }();
  return cached;
}

namespace {
// Reads the state letter (field 3) and start time (field 22) of /proc/<pid>/stat.
bool read_stat(pid_t pid, char& state, std::uint64_t& start) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (!f) return false;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Field 2 (comm) may hold spaces and parentheses: skip to the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ' || p[2] == '\0') return false;
  state = p[2];
  // After ") " come fields 3..; start time is field 22.
  int field = 2;
  for (++p; *p && field < 22; ++p) {
    if (*p == ' ') ++field;
  }
  start = std::strtoull(p, nullptr, 10);
  return true;
}
}  // namespace

std::uint64_t process_start_ticks(pid_t pid) noexcept {
  char state = 0;
  std::uint64_t start = 0;
  return read_stat(pid, state, start) ? start : 0;
}

ProcessIdentity ProcessIdentity::self() {
  ProcessIdentity id;
  id.pid = ::getpid();
  id.start_ticks = process_start_ticks(id.pid);
  id.boot_id = current_boot_id();
  return id;
}

bool is_alive(const ProcessIdentity& id) noexcept {
  if (id.pid <= 0) return false;
  if (id.boot_id != current_boot_id()) return false;
  if (::kill(id.pid, 0) != 0 && errno == ESRCH) return false;
  char state = 0;
  std::uint64_t start = 0;
  if (!read_stat(id.pid, state, start)) return false;
  // A killed process stays a zombie until its parent reaps it: it is gone for
  // us already. The start time guards against pid reuse.
  return state != 'Z' && state != 'X' && start == id.start_ticks;
}

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace cpipc::ipc
