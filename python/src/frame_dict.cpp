#include "frame_dict.hpp"

#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <utility>

namespace cpipc::python {

namespace {

const char* state_name(ipc::format::State state) {
  switch (state) {
    case ipc::format::State::creating:
      return "creating";
    case ipc::format::State::live:
      return "live";
    case ipc::format::State::closed:
      return "closed";
    case ipc::format::State::replaced:
      return "replaced";
  }
  return "unknown";
}

const char* export_kind_name(ipc::format::ExportKind kind) {
  switch (kind) {
    case ipc::format::ExportKind::none:
      return "none";
    case ipc::format::ExportKind::cuda_ipc:
      return "cuda_ipc";
    case ipc::format::ExportKind::vmm_fd:
      return "vmm_fd";
  }
  return "unknown";
}

}  // namespace

nb::dict frame_dict(const ipc::FrameInfo& info) {
  nb::dict d;
  d["frame_id"] = info.frame_id;
  d["slot"] = info.slot;
  d["seq"] = info.seq;
  d["publish_unix_ns"] = info.publish_realtime_ns;
  d["publish_monotonic_ns"] = info.publish_monotonic_ns;
  d["object_count"] = info.meta.object_count;
  d["diameter"] = info.meta.diameter;
  d["meta"] = nb::bytes(info.meta.json.data(), info.meta.json.size());
  return d;
}

nb::dict status_dict(const std::string& name, const ipc::SegmentStatus& s) {
  const ipc::SegmentLayout& l = s.layout;
  nb::list shape;
  nb::list strides;
  for (std::uint32_t i = 0; i < l.desc.ndim; ++i) {
    shape.append(l.desc.shape[i]);
    strides.append(l.desc.strides[i]);
  }
  nb::dict d;
  d["name"] = name;
  d["dtype"] = ipc::to_string(l.desc.dtype);
  d["shape"] = nb::tuple(shape);
  d["strides"] = nb::tuple(strides);
  d["frame_bytes"] = l.desc.nbytes();
  d["total_bytes"] = l.total_bytes;
  d["slots"] = l.slot_count;
  d["abi"] = std::to_string(l.abi_major) + "." + std::to_string(l.abi_minor);
  d["state"] = state_name(s.state);
  d["producer_pid"] = static_cast<std::int64_t>(l.producer.pid);
  d["producer_alive"] = s.producer_alive;
  d["frames_published"] = s.frames_published;
  d["active_leases"] = s.active_leases;
  d["lease_overrides"] = s.lease_overrides;
  d["export_kind"] = export_kind_name(l.export_kind);
  d["device_ordinal"] = l.device_ordinal;
  d["created_unix_ns"] = l.created_realtime_ns;
  d["stuck"] = s.stuck;
  d["latest"] = s.latest ? nb::object(frame_dict(*s.latest)) : nb::none();
  return d;
}

NewBytes new_bytes(std::size_t n) {
  auto* data = new std::byte[n];  // default-initialised: the copy that follows writes every byte
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<std::byte*>(p); });
  const std::size_t shape[1] = {n};
  nb::object array = nb::cast(
      nb::ndarray<nb::numpy, std::uint8_t, nb::ndim<1>>(reinterpret_cast<std::uint8_t*>(data), 1, shape, owner));
  return {std::move(array), std::span<std::byte>(data, n)};
}

}  // namespace cpipc::python
