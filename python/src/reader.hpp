// Reader: an attached segment, shared by the host leases (segment.cpp) and
// the device reader (device_view.cpp) taken from it.
#pragma once

#include <memory>
#include <string>

#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"

namespace cpipc::python {

// The reader is shared with every lease taken from it: the mapping a lease's
// numpy view points into lives until the last of them is gone, whatever the
// order in which Python closes or collects them.
class Reader {
 public:
  explicit Reader(const std::string& name)
      : name_(name), reader_(std::make_shared<ipc::SegmentReader>(ipc::SegmentReader::attach(name))) {}

  [[nodiscard]] const std::shared_ptr<ipc::SegmentReader>& get() const {
    if (!reader_) throw Error(Errc::invalid_argument, "segment '" + name_ + "' was closed in this process");
    return reader_;
  }
  void close() noexcept { reader_.reset(); }
  [[nodiscard]] bool closed() const noexcept { return !reader_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
  std::shared_ptr<ipc::SegmentReader> reader_;
};

}  // namespace cpipc::python
