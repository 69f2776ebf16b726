// list_segments, remove and gc: cpipc/ipc/registry.hpp.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "bindings.hpp"
#include "cpipc/ipc/registry.hpp"
#include "frame_dict.hpp"

namespace cpipc::python {

void bind_registry(nb::module_& m) {
  m.def(
      "list_segments",
      [] {
        std::vector<ipc::SegmentEntry> entries;
        {
          nb::gil_scoped_release unlocked;
          entries = ipc::list_segments();
        }
        nb::list out;
        for (const ipc::SegmentEntry& e : entries) {
          nb::dict d = e.status ? status_dict(e.name, *e.status) : nb::dict();
          d["name"] = e.name;
          d["total_bytes"] = e.bytes;
          d["untrusted"] = e.untrusted;
          if (!e.status) {
            d["state"] = e.untrusted ? "untrusted" : "corrupt";
            d["problem"] = e.problem;
          }
          out.append(d);
        }
        return out;
      },
      "This user's segments, as `cpipc ls --json`.");
  m.def(
      "remove",
      [](const std::string& name) {
        nb::gil_scoped_release unlocked;
        ipc::remove_segment(name);
      },
      nb::arg("name"), "Unlinks segment `name` (mapped readers keep it). Raises NotFound.");
  m.def(
      "gc",
      [](double min_age_s, const std::vector<std::string>& only) {
        nb::gil_scoped_release unlocked;
        return ipc::collect_garbage(min_age_s, only);
      },
      nb::arg("min_age") = 10.0, nb::arg("names") = std::vector<std::string>{},
      "Removes segments whose producer is gone; returns their names.");
}

}  // namespace cpipc::python
