// The parts of the _cpipc module, each bound from its own file.
#pragma once

#include <nanobind/nanobind.h>

namespace cpipc::python {

namespace nb = nanobind;

// cpipc::Error -> the cpipc.errors class of its code (errors.cpp).
void register_errors();
// Reader and Lease (segment.cpp).
void bind_segment(nb::module_& m);
// Writer (publisher.cpp).
void bind_publisher(nb::module_& m);
// list_segments, remove, gc (registry.cpp).
void bind_registry(nb::module_& m);
// Connection, default_socket_path (connection.cpp).
void bind_connection(nb::module_& m);
// DeviceReader, DeviceLease, built_with_cuda (device_view.cpp).
void bind_device_view(nb::module_& m);

}  // namespace cpipc::python
