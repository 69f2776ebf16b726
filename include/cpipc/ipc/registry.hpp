// The segments of the calling user on this machine: list, remove, collect garbage.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cpipc/ipc/reader.hpp"

namespace cpipc::ipc {

struct SegmentEntry {
  std::string name;
  std::uint64_t bytes = 0;              // size of the shm object
  std::optional<SegmentStatus> status;  // nullopt if the header is invalid
  std::string problem;                  // why status is missing
  // Not created by us: another owner or a mode other than 0600 (another
  // user may have planted it). Never attached to, never collected.
  bool untrusted = false;
};

// Every cpipc shm object of this user, sorted by name. Each segment gets a
// short deadline (0.1 s) for its latest frame: a producer stuck mid-write
// shows as status->stuck, and does not block the listing.
[[nodiscard]] std::vector<SegmentEntry> list_segments();

// Unlinks the segment's name (mapped readers keep their mapping). Throws
// Error(not_found) if there is none.
void remove_segment(std::string_view name);

// Unlinks the segments whose producer is gone (dead or closed), and objects
// that never got a valid header and are older than `min_age_s`; only those
// named in `only` when it is not empty. Untrusted objects (see SegmentEntry)
// are left alone. A producer stuck mid-write but alive keeps its segment.
// Each segment gets a short deadline: a stuck one cannot block the others.
// Returns the removed names.
std::vector<std::string> collect_garbage(double min_age_s = 10.0, const std::vector<std::string>& only = {});

}  // namespace cpipc::ipc
