// What a reader or writer of one segment owns: the fd, the mapping and the
// checked layout. It lives on the heap behind a shared_ptr so that leases and
// frame writers point at it, not at the (movable) SegmentReader/SegmentWriter:
// moving the owner never moves the storage its views use.
#pragma once

#include <string>

#include "cpipc/ipc/detail/mapping.hpp"
#include "cpipc/ipc/header.hpp"

namespace cpipc::ipc::detail {

struct SegmentState {
  std::string name;
  UniqueFd fd;
  Mapping map;
  SegmentLayout layout;
  bool writing = false;  // writer only: a FrameWriter is open
  bool open = false;     // writer only: not closed yet
};

}  // namespace cpipc::ipc::detail
