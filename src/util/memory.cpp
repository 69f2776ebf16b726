#include "cpipc/util/memory.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

namespace cpipc::util {

namespace {

constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

// The value of `key` (in kB) in a /proc file of "Key: value kB" lines, in bytes.
std::uint64_t proc_kib(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      std::istringstream fields(line.substr(key.size()));
      std::uint64_t kib = 0;
      if (fields >> kib) return kib * 1024;
    }
  }
  return 0;
}

// A cgroup file holding a byte count ("max" or a v1 near-2^63 value: none).
std::uint64_t cgroup_value(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return kUnlimited;
  try {
    const std::uint64_t v = std::stoull(text);
    return v >= (std::uint64_t{1} << 62) ? kUnlimited : v;
  } catch (...) {
    return kUnlimited;
  }
}

// A "key value" line of a cgroup memory.stat file.
std::uint64_t cgroup_stat(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

// What this process's memory cgroup still allows: its limit less what it
// uses, not counting page cache the kernel would drop first (inactive files).
std::uint64_t cgroup_room() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    std::string dir;
    std::string max_file;
    std::string current_file;
    std::string inactive_key;
    if (line.rfind("0::", 0) == 0) {  // v2: the single "0::/path" entry
      dir = "/sys/fs/cgroup" + line.substr(3);
      max_file = "/memory.max";
      current_file = "/memory.current";
      inactive_key = "inactive_file";
    } else if (const auto at = line.find(":memory:"); at != std::string::npos) {  // v1
      dir = "/sys/fs/cgroup/memory" + line.substr(at + 8);
      max_file = "/memory.limit_in_bytes";
      current_file = "/memory.usage_in_bytes";
      inactive_key = "total_inactive_file";
    } else {
      continue;
    }
    const std::uint64_t max = cgroup_value(dir + max_file);
    if (max == kUnlimited) continue;
    std::uint64_t used = cgroup_value(dir + current_file);
    if (used == kUnlimited) continue;
    used -= std::min(used, cgroup_stat(dir + "/memory.stat", inactive_key));
    return used >= max ? 0 : max - used;
  }
  return kUnlimited;
}

// What `ulimit -v` (RLIMIT_AS) still allows this process to map.
std::uint64_t address_space_room() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kUnlimited;
  const std::uint64_t used = proc_kib("/proc/self/status", "VmSize:");
  return used >= limit.rlim_cur ? 0 : limit.rlim_cur - used;
}

}  // namespace

std::uint64_t available_memory() noexcept {
  try {
    const std::uint64_t machine = proc_kib("/proc/meminfo", "MemAvailable:");
    if (machine == 0) return 0;
    return std::min({machine, cgroup_room(), address_space_room()});
  } catch (...) {
    return 0;
  }
}

std::string gib_string(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace cpipc::util
