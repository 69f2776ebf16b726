// Label images wider than 16 bits, narrowed for PNG, which holds at most 16
// bits per sample (Cellpose too saves masks as uint16 PNG below 65536
// labels). Header-only: the OpenCV plugin, which links no cpipc_io, and
// cpipc_io's own PNG writer share it, so both narrow the same images.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "cpipc/io/array.hpp"

namespace cpipc::io::detail {

namespace narrowing {

template <class T>
std::optional<Array> to_uint16(const ipc::HostView& v) {
  const T* p = v.as<T>();
  const std::int64_t n = v.desc.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_signed_v<T>) {
      if (p[i] < 0) return std::nullopt;
    }
    if (static_cast<std::uint64_t>(p[i]) > 65535u) return std::nullopt;
  }
  Array a;
  a.desc = ipc::TensorDesc::contiguous(ipc::kUInt16, {v.desc.shape.data(), v.desc.ndim});
  a.data.resize(a.desc.nbytes());
  auto* q = reinterpret_cast<std::uint16_t*>(a.data.data());
  for (std::int64_t i = 0; i < n; ++i) q[i] = static_cast<std::uint16_t>(p[i]);
  return a;
}

}  // namespace narrowing

// A C-contiguous 32- or 64-bit integer image `v` as uint16 (same shape) when
// every value is in [0, 65535]; nullopt for other dtypes or when one is not.
[[nodiscard]] inline std::optional<Array> labels_as_uint16(const ipc::HostView& v) {
  const ipc::DType d = v.desc.dtype;
  if (d.lanes != 1) return std::nullopt;
  if (d.code == ipc::DTypeCode::uint && d.bits == 32) return narrowing::to_uint16<std::uint32_t>(v);
  if (d.code == ipc::DTypeCode::uint && d.bits == 64) return narrowing::to_uint16<std::uint64_t>(v);
  if (d.code == ipc::DTypeCode::int_ && d.bits == 32) return narrowing::to_uint16<std::int32_t>(v);
  if (d.code == ipc::DTypeCode::int_ && d.bits == 64) return narrowing::to_uint16<std::int64_t>(v);
  return std::nullopt;
}

}  // namespace cpipc::io::detail
