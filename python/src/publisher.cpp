// Writer (a SegmentWriter) for cpipc.Publisher.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "cpipc/error.hpp"
#include "cpipc/ipc/writer.hpp"
#include "frame_dict.hpp"

namespace cpipc::python {

namespace {

using Bytes = nb::ndarray<const std::uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

class Writer {
 public:
  Writer(const std::string& name, const std::string& dtype, const std::vector<std::int64_t>& shape, std::uint32_t slots)
      : name_(name) {
    const std::optional<ipc::DType> parsed = ipc::parse_dtype(dtype);
    if (!parsed) throw Error(Errc::invalid_argument, "unsupported dtype '" + dtype + "'");
    ipc::SegmentOptions options;
    options.slots = slots;
    writer_.emplace(ipc::SegmentWriter::create(name, ipc::TensorDesc::contiguous(*parsed, shape), options));
  }

  // Copies `data` (the frame's bytes, C order) into the next slot.
  nb::dict publish(Bytes data, nb::bytes meta_json, std::uint32_t object_count, float diameter) {
    ipc::SegmentWriter& w = get();
    if (data.size() != w.desc().nbytes()) {
      throw Error(Errc::invalid_argument, "a frame of segment '" + name_ + "' is " + std::to_string(w.desc().nbytes()) +
                                              " bytes, not " + std::to_string(data.size()));
    }
    ipc::FrameMeta meta{object_count, diameter, std::string(meta_json.c_str(), meta_json.size())};
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data.data()), data.size());
    std::optional<ipc::FrameInfo> info;
    {
      nb::gil_scoped_release unlocked;
      info = w.publish(bytes, meta);
    }
    return frame_dict(*info);
  }

  void close() noexcept { writer_.reset(); }  // closed state, readers woken, name unlinked
  [[nodiscard]] bool closed() const noexcept { return !writer_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] ipc::SegmentWriter& get() {
    if (!writer_) throw Error(Errc::invalid_argument, "publisher '" + name_ + "' was closed");
    return *writer_;
  }

 private:
  std::string name_;
  std::optional<ipc::SegmentWriter> writer_;
};

}  // namespace

void bind_publisher(nb::module_& m) {
  nb::class_<Writer>(m, "Writer", "A segment this process produces (cpipc::ipc::SegmentWriter).")
      .def(nb::init<const std::string&, const std::string&, const std::vector<std::int64_t>&, std::uint32_t>(),
           nb::arg("name"), nb::arg("dtype"), nb::arg("shape"), nb::arg("slots") = 4,
           "Creates segment `name`. Raises Error if the name is taken, BadInput for a bad name, dtype or shape.")
      .def_prop_ro("name", &Writer::name)
      .def_prop_ro("closed", &Writer::closed)
      .def("publish", &Writer::publish, nb::arg("data"), nb::arg("meta_json"), nb::arg("object_count") = 0,
           nb::arg("diameter") = 0.0f, "Copies a frame's bytes into the next slot and publishes it. GIL released.")
      .def("close", &Writer::close, "Marks the segment closed, wakes its readers and unlinks the name.");
}

}  // namespace cpipc::python
