// Label images, narrowed one way everywhere: uint16 when every label fits
// (Cellpose saves masks as uint16 below 65 536 labels, and a PNG holds 16
// bits), else left wide. Header-only: the OpenCV codec plugin, which links
// no cpipc_io, narrows with the same code as cpipc_io's own PNG writer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

#include "cpipc/error.hpp"
#include "cpipc/io/array.hpp"

namespace cpipc::io {

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

// `labels` (row-major, height x width) as the Array to write or publish:
// uint16 when every label is below 65 536, else uint32 (a copy either way).
// Throws Error(invalid_argument) when the sizes disagree.
[[nodiscard]] inline Array narrow_labels(std::span<const std::uint32_t> labels, std::int64_t height,
                                         std::int64_t width) {
  if (height < 0 || width < 0 ||
      static_cast<std::uint64_t>(height) * static_cast<std::uint64_t>(width) != labels.size()) {
    throw Error(Errc::invalid_argument, "narrow_labels: " + std::to_string(labels.size()) + " labels for " +
                                            std::to_string(height) + " x " + std::to_string(width) + " pixels");
  }
  const std::int64_t shape[2] = {height, width};
  const bool fits = std::all_of(labels.begin(), labels.end(), [](std::uint32_t v) { return v <= 65535u; });
  Array a;
  a.desc = ipc::TensorDesc::contiguous(fits ? ipc::kUInt16 : ipc::kUInt32, shape);
  a.data.resize(a.desc.nbytes());
  if (!fits) {
    std::memcpy(a.data.data(), labels.data(), a.data.size());
    return a;
  }
  auto* q = reinterpret_cast<std::uint16_t*>(a.data.data());
  for (std::size_t i = 0; i < labels.size(); ++i) q[i] = static_cast<std::uint16_t>(labels[i]);
  return a;
}

}  // namespace cpipc::io
