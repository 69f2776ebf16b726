#include "cpipc/util/memory.hpp"

#include <cstdio>
#include <fstream>

namespace cpipc::util {

std::uint64_t available_memory() noexcept {
  try {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::uint64_t kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit) {
      if (key == "MemAvailable:") return kib * 1024;
    }
  } catch (...) {
  }
  return 0;
}

std::string gib_string(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace cpipc::util
