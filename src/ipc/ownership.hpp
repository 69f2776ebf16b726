// Whether a shm object under our name is one of ours: another local user can
// create /dev/shm/cpipc.<our uid>.<name> (the directory is world-writable),
// and a reader must not take data from it, nor a producer's name.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace cpipc::ipc::detail {

// Empty if `st` is a regular file owned by our effective uid with mode
// exactly 0600 (what every producer creates); else what is wrong.
inline std::string foreign_reason(const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return "is not a regular file";
  if (st.st_uid != ::geteuid()) return "is owned by uid " + std::to_string(st.st_uid);
  if ((st.st_mode & 07777) != 0600) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return std::string("has mode ") + mode;
  }
  return {};
}

inline std::string foreign_message(const std::string& name, const std::string& why) {
  return "segment '" + name + "' " + why + ", not ours (uid " + std::to_string(::geteuid()) +
         ", mode 0600): another user may have planted it; do not trust it, remove it ('cpipc rm " + name +
         "') or ask root to";
}

}  // namespace cpipc::ipc::detail
