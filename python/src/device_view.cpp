// DeviceReader and DeviceLease for cpipc.Segment.device_view(): a frame's
// device buffer (CUDA IPC) as a DLPack-capable array, no copy. Built over
// cuda/runtime/ when the CUDA toolkit was found at install time, over
// cuda/none/ (every call raises "built without CUDA") otherwise.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "bindings.hpp"
#include "cpipc/cuda/device.hpp"
#include "cpipc/cuda/device_reader.hpp"
#include "cpipc/error.hpp"
#include "frame_dict.hpp"
#include "reader.hpp"

namespace cpipc::python {

namespace {

using std::chrono::milliseconds;

// kDLCUDA in DLPack's DLDeviceType.
constexpr int kDLCuda = 2;

// A cudaStream_t as Python passes it: an integer handle (0: the legacy
// default stream; 1 and 2: CUDA's cudaStreamLegacy / cudaStreamPerThread).
cuda::StreamView stream_of(std::uintptr_t handle) {
  return cuda::StreamView::from_native(reinterpret_cast<void*>(handle));
}

class DeviceLease {
 public:
  DeviceLease(std::shared_ptr<cuda::DeviceReader> reader, cuda::DeviceLease lease)
      : reader_(std::move(reader)), lease_(std::move(lease)) {}

  [[nodiscard]] bool valid() const noexcept { return lease_ && lease_->valid(); }
  // Gives the slot back; the device mapping stays (reader_, kept by every
  // array made from this lease) but its bytes may change from now on.
  void release() noexcept { lease_.reset(); }
  [[nodiscard]] const cuda::DeviceLease& get() const {
    if (!lease_) throw Error(Errc::invalid_argument, "the device lease was released");
    return *lease_;
  }
  [[nodiscard]] int device() const noexcept { return reader_->device(); }

 private:
  // Declared first so that it goes last: the lease before the handles.
  std::shared_ptr<cuda::DeviceReader> reader_;
  std::optional<cuda::DeviceLease> lease_;
};

std::shared_ptr<cuda::DeviceReader> open_device(const Reader& reader) {
  return std::make_shared<cuda::DeviceReader>(reader.get());
}

nb::object lease_latest(const std::shared_ptr<cuda::DeviceReader>& self, std::uintptr_t stream, double duration_s) {
  // The GIL stays held: DeviceReader's slot cache is not thread-safe, and
  // nothing here waits (duration is the lease's, and a slot's handles are
  // opened once).
  std::optional<cuda::DeviceLease> lease =
      self->lease_latest(stream_of(stream), milliseconds(static_cast<std::int64_t>(duration_s * 1000.0)));
  if (!lease) return nb::none();
  return nb::cast(DeviceLease(self, std::move(*lease)));
}

// The frame as an nb_ndarray on kDLCUDA (it has __dlpack__ and
// __dlpack_device__); it keeps the DeviceLease object, and through it the
// imported handles, alive. Read-only by contract but not flagged so (DLPack
// 1.0's read-only bit): some consumers refuse flagged capsules (unverified
// here for torch and CuPy), and unversioned ones cannot carry it anyway.
nb::object lease_array(nb::pointer_and_handle<DeviceLease> self) {
  const cuda::DeviceLease& lease = self.p->get();
  const ipc::TensorDesc& d = lease.desc();
  std::size_t shape[ipc::format::kMaxDims];
  for (std::uint32_t i = 0; i < d.ndim; ++i) shape[i] = static_cast<std::size_t>(d.shape[i]);
  const nb::dlpack::dtype dtype{static_cast<std::uint8_t>(d.dtype.code), d.dtype.bits, d.dtype.lanes};
  return nb::cast(nb::ndarray<nb::array_api>(const_cast<void*>(lease.data()), d.ndim, shape, self.h, d.strides.data(),
                                             dtype, kDLCuda, self.p->device()));
}

}  // namespace

void bind_device_view(nb::module_& m) {
  m.def("built_with_cuda", &cuda::built_with_cuda, "True if this module has its CUDA part (device views).");
  m.def(
      "cuda_device_count", [] { return cuda::device_count(); },
      "CUDA devices this process can use; 0 without a driver, a device, or CUDA in this build.");

  nb::class_<cuda::DeviceReader>(m, "DeviceReader", "Device views of a segment (cpipc::cuda::DeviceReader).")
      .def_static("open", &open_device, nb::arg("reader"),
                  "Raises BadInput for a host-only segment, NotFound when its GPU is not visible here or the "
                  "module was built without CUDA.")
      .def_prop_ro("device", &cuda::DeviceReader::device, "The segment's GPU, as this process numbers it.")
      .def("lease_latest", &lease_latest, nb::arg("stream"), nb::arg("duration") = 2.0,
           "A DeviceLease on the latest frame, ordered on cudaStream_t `stream` (0: default stream), or None "
           "if nothing (with a device copy) was published.");

  nb::class_<DeviceLease>(m, "DeviceLease", "A lease on one frame's device buffer (cpipc::cuda::DeviceLease).")
      .def("valid", &DeviceLease::valid, "True while the producer has not taken the slot back.")
      .def("release", &DeviceLease::release, "Gives the slot back; the bytes may change afterwards.")
      .def_prop_ro("device", &DeviceLease::device)
      .def("array", &lease_array, "The frame as a kDLCUDA ndarray with __dlpack__, no copy.")
      .def(
          "info", [](const DeviceLease& l) { return frame_dict(l.get().info()); }, "The leased frame's dict.")
      .def(
          "order_on", [](const DeviceLease& l, std::uintptr_t stream) { l.get().order_on(stream_of(stream)); },
          nb::arg("stream"), "Orders cudaStream_t `stream` after the producer's write too.");
}

}  // namespace cpipc::python
