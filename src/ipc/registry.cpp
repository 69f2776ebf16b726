#include "cpipc/ipc/registry.hpp"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"
#include "ownership.hpp"

namespace cpipc::ipc {

namespace {

struct ShmFile {
  std::string name;  // stream name (without the prefix)
  struct stat st {};
};

std::vector<ShmFile> shm_files() {
  std::vector<ShmFile> files;
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) throw_errno("cannot list /dev/shm", errno);
  const std::string prefix = shm_prefix();
  while (const dirent* ent = ::readdir(dir)) {
    const std::string_view file = ent->d_name;
    if (!file.starts_with(prefix)) continue;
    ShmFile f;
    f.name = std::string(file.substr(prefix.size()));
    const std::string path = "/dev/shm/" + std::string(file);
    if (::lstat(path.c_str(), &f.st) != 0) continue;  // removed meanwhile
    files.push_back(std::move(f));
  }
  ::closedir(dir);
  std::sort(files.begin(), files.end(), [](const ShmFile& a, const ShmFile& b) { return a.name < b.name; });
  return files;
}

// One stopped producer must not hold up the listing of all the others.
constexpr std::chrono::milliseconds kListPatience{100};

SegmentEntry inspect(const ShmFile& f) {
  SegmentEntry e;
  e.name = f.name;
  e.bytes = static_cast<std::uint64_t>(f.st.st_size);
  // Not opened at all if it is not ours: its header could say anything.
  if (const std::string why = detail::foreign_reason(f.st); !why.empty()) {
    e.untrusted = true;
    e.problem = detail::foreign_message(f.name, why);
    return e;
  }
  try {
    e.status = SegmentReader::attach(f.name).status(kListPatience);
  } catch (const Error& err) {
    e.problem = err.what();
    // Swapped for a foreign object between our lstat and attach's fstat.
    struct stat now {};
    const std::string path = "/dev/shm/" + shm_prefix() + f.name;
    if (::lstat(path.c_str(), &now) == 0 && !detail::foreign_reason(now).empty()) e.untrusted = true;
  }
  return e;
}

}  // namespace

std::vector<SegmentEntry> list_segments() {
  std::vector<SegmentEntry> out;
  for (const ShmFile& f : shm_files()) {
    SegmentEntry e = inspect(f);
    if (e.status || !e.problem.starts_with("no segment named")) out.push_back(std::move(e));
  }
  return out;
}

void remove_segment(std::string_view name) {
  const std::string object = shm_object_name(name);
  if (::shm_unlink(object.c_str()) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw Error(Errc::not_found,
                  "no segment named '" + std::string(name) + "'; 'cpipc ls' lists the segments there are");
    }
    throw_errno("cannot remove segment '" + std::string(name) + "'", err);
  }
}

std::vector<std::string> collect_garbage(double min_age_s, const std::vector<std::string>& only) {
  std::vector<std::string> removed;
  const std::time_t now = std::time(nullptr);
  for (const ShmFile& f : shm_files()) {
    if (!only.empty() && std::find(only.begin(), only.end(), f.name) == only.end()) continue;
    const SegmentEntry e = inspect(f);
    bool dead = false;
    if (e.untrusted) {
      continue;  // not ours to judge by its header; 'cpipc ls' says whose it is
    } else if (e.status) {
      dead = !e.status->producer_alive || e.status->state != format::State::live;
    } else if (!e.problem.starts_with("no segment named")) {
      dead = static_cast<double>(now - f.st.st_ctime) >= min_age_s;  // never got a valid header
    }
    const std::string object = "/" + shm_prefix() + f.name;  // the name may not even be valid
    if (dead && ::shm_unlink(object.c_str()) == 0) removed.push_back(f.name);
  }
  return removed;
}

}  // namespace cpipc::ipc
