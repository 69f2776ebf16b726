// cpipc._cpipc: a thin layer over the segment library. Frames cross as flat
// uint8 arrays; cpipc/*.py gives them their dtype and shape, so that every
// dtype a segment holds (bfloat16 included) needs no C++ here.
#include <nanobind/nanobind.h>

#include "bindings.hpp"

NB_MODULE(_cpipc, m) {
  m.doc() = "cpipc's segment library (C++); use the cpipc package, not this module";
  cpipc::python::register_errors();
  cpipc::python::bind_segment(m);
  cpipc::python::bind_publisher(m);
  cpipc::python::bind_registry(m);
  cpipc::python::bind_connection(m);
  cpipc::python::bind_device_view(m);
}
