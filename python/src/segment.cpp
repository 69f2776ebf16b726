// Reader (a SegmentReader) and Lease (a FrameLease) for cpipc.Segment.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "cpipc/error.hpp"
#include "cpipc/ipc/reader.hpp"
#include "frame_dict.hpp"
#include "reader.hpp"

namespace cpipc::python {

namespace {

using std::chrono::milliseconds;

// Waits are cut into slices this long so that Ctrl-C (a signal Python sees
// only while it holds the GIL) stops a wait_next within this time.
constexpr milliseconds kWaitSlice{100};

class Lease {
 public:
  Lease(std::shared_ptr<ipc::SegmentReader> reader, ipc::FrameLease lease)
      : reader_(std::move(reader)), lease_(std::move(lease)) {}

  [[nodiscard]] bool valid() const noexcept { return lease_ && lease_->valid(); }
  // Gives the slot back to the producer; the view stays mapped (reader_) but
  // its bytes may change from now on.
  void release() noexcept { lease_.reset(); }
  void renew(double seconds) {
    if (lease_) lease_->renew(milliseconds(static_cast<std::int64_t>(seconds * 1000.0)));
  }
  [[nodiscard]] const ipc::FrameLease& get() const {
    if (!lease_) throw Error(Errc::invalid_argument, "the lease was released");
    return *lease_;
  }
  [[nodiscard]] const std::shared_ptr<ipc::SegmentReader>& reader() const noexcept { return reader_; }

 private:
  std::shared_ptr<ipc::SegmentReader> reader_;
  std::optional<ipc::FrameLease> lease_;
};

nb::object copy_latest(const Reader& self) {
  const std::shared_ptr<ipc::SegmentReader> reader = self.get();
  NewBytes out = new_bytes(reader->desc().nbytes());
  std::optional<ipc::FrameInfo> info;
  {
    nb::gil_scoped_release unlocked;
    info = reader->copy_latest(out.bytes);
  }
  if (!info) return nb::none();
  return nb::make_tuple(out.array, frame_dict(*info));
}

// Blocks until a frame newer than `after` is published; returns it as
// (bytes, info), or None after `timeout_s` (None: no limit). With `copy`
// false, returns its info alone (a consumer that reads it through a lease).
nb::object wait_next(const Reader& self, std::uint64_t after, std::optional<double> timeout_s, bool copy) {
  const std::shared_ptr<ipc::SegmentReader> reader = self.get();
  const auto start = std::chrono::steady_clock::now();
  const auto limit = timeout_s ? std::optional(std::chrono::duration<double>(std::max(0.0, *timeout_s))) : std::nullopt;
  NewBytes out = copy ? new_bytes(reader->desc().nbytes()) : NewBytes{};
  std::optional<ipc::FrameInfo> info;
  for (;;) {
    milliseconds slice = kWaitSlice;
    if (limit) {
      const auto left = *limit - (std::chrono::steady_clock::now() - start);
      if (left.count() <= 0) return nb::none();
      slice = std::min(slice, std::max(milliseconds(1), std::chrono::ceil<milliseconds>(left)));
    }
    {
      nb::gil_scoped_release unlocked;
      try {
        const ipc::FrameInfo next = reader->wait_next(after, slice);
        if (!copy) {
          info = next;
        } else {
          // The slot named may be written again before we copy it: then the
          // newest frame is the next one this caller has not seen.
          info = reader->copy_frame(next.slot, next.seq, out.bytes);
          if (!info) info = reader->copy_latest(out.bytes);
        }
      } catch (const Error& e) {
        if (e.code() != Errc::timed_out) throw;
      }
    }
    if (info) return copy ? nb::object(nb::make_tuple(out.array, frame_dict(*info))) : nb::object(frame_dict(*info));
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
  }
}

nb::object lease_latest(const Reader& self, double duration_s) {
  const std::shared_ptr<ipc::SegmentReader> reader = self.get();
  std::optional<ipc::FrameLease> lease;
  {
    nb::gil_scoped_release unlocked;
    lease = reader->lease_latest(milliseconds(static_cast<std::int64_t>(duration_s * 1000.0)));
  }
  if (!lease) return nb::none();
  return nb::cast(Lease(reader, std::move(*lease)));
}

// A read-only uint8 view of the leased frame; the numpy array keeps the
// Lease object (and through it the mapping) alive.
nb::object lease_view(nb::pointer_and_handle<Lease> self) {
  const ipc::HostView& view = self.p->get().view();
  const std::size_t shape[1] = {view.desc.nbytes()};
  return nb::cast(nb::ndarray<nb::numpy, const std::uint8_t, nb::ndim<1>>(
      reinterpret_cast<const std::uint8_t*>(view.data), 1, shape, self.h));
}

}  // namespace

void bind_segment(nb::module_& m) {
  nb::class_<Reader>(m, "Reader", "An attached segment (cpipc::ipc::SegmentReader).")
      .def(nb::init<const std::string&>(), nb::arg("name"),
           "Attaches to segment `name`. Raises NotFound, BadInput (bad name, not ours, corrupt).")
      .def_prop_ro("name", &Reader::name)
      .def_prop_ro("closed", &Reader::closed)
      .def_prop_ro(
          "dtype", [](const Reader& r) { return ipc::to_string(r.get()->desc().dtype); }, "The dtype's cpipc name.")
      .def_prop_ro(
          "shape",
          [](const Reader& r) {
            nb::list shape;
            const ipc::TensorDesc& d = r.get()->desc();
            for (std::uint32_t i = 0; i < d.ndim; ++i) shape.append(d.shape[i]);
            return nb::tuple(shape);
          },
          "The frames' shape.")
      .def("close", &Reader::close, "Detaches (after the last lease); never unlinks.")
      .def("copy_latest", &copy_latest, "(uint8 array, frame dict) of the latest frame, or None. GIL released.")
      .def("wait_next", &wait_next, nb::arg("after"), nb::arg("timeout") = nb::none(), nb::arg("copy") = true,
           "(uint8 array, frame dict) of the first frame newer than `after` (its dict alone when `copy` is "
           "False), or None after `timeout` seconds. GIL released. Raises ProducerGone.")
      .def("lease_latest", &lease_latest, nb::arg("duration") = 2.0,
           "A Lease on the latest frame for `duration` seconds, or None if nothing was published.")
      .def(
          "status",
          [](const Reader& r) {
            const std::shared_ptr<ipc::SegmentReader> reader = r.get();
            std::optional<ipc::SegmentStatus> s;
            {
              nb::gil_scoped_release unlocked;
              s = reader->status(milliseconds(100));
            }
            return status_dict(r.name(), *s);
          },
          "The fields of `cpipc info --json`, as a dict.");

  nb::class_<Lease>(m, "Lease", "A zero-copy lease on one frame (cpipc::ipc::FrameLease).")
      .def("valid", &Lease::valid, "True while the producer has not taken the slot back.")
      .def("release", &Lease::release, "Gives the slot back; the view's bytes may change afterwards.")
      .def("view", &lease_view, "A read-only uint8 numpy view of the frame, no copy.")
      .def(
          "info", [](const Lease& l) { return frame_dict(l.get().info()); }, "The leased frame's dict.")
      .def("renew", &Lease::renew, nb::arg("duration"), "Extends the lease by `duration` seconds from now.");
}

}  // namespace cpipc::python
