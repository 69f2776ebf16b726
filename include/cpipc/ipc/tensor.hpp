// Tensor descriptions and non-owning host views, in DLPack's terms.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cpipc/ipc/format.hpp"

namespace cpipc::ipc {

// DLPack's DLDataTypeCode values that cpipc carries.
enum class DTypeCode : std::uint8_t { int_ = 0, uint = 1, float_ = 2, bfloat = 4, bool_ = 6 };

struct DType {
  DTypeCode code = DTypeCode::uint;
  std::uint8_t bits = 8;
  std::uint16_t lanes = 1;

  [[nodiscard]] std::size_t itemsize() const noexcept { return std::size_t{bits} / 8 * lanes; }
  friend bool operator==(const DType&, const DType&) = default;
};

inline constexpr DType kUInt8{DTypeCode::uint, 8, 1};
inline constexpr DType kUInt16{DTypeCode::uint, 16, 1};
inline constexpr DType kUInt32{DTypeCode::uint, 32, 1};
inline constexpr DType kInt32{DTypeCode::int_, 32, 1};
inline constexpr DType kFloat32{DTypeCode::float_, 32, 1};

// True for the dtypes a segment may carry: (u)int 8/16/32/64, float 16/32/64,
// bfloat16, bool8, one lane.
[[nodiscard]] bool is_supported(DType dtype) noexcept;
// "uint16", "float32", ... ; "dtype(code=9,bits=3,lanes=1)" for others.
[[nodiscard]] std::string to_string(DType dtype);
// Inverse of to_string for supported dtypes.
[[nodiscard]] std::optional<DType> parse_dtype(std::string_view name) noexcept;

// Shape and strides (in elements) of an up-to-4-D tensor.
struct TensorDesc {
  DType dtype;
  std::uint32_t ndim = 0;
  std::array<std::int64_t, format::kMaxDims> shape{};
  std::array<std::int64_t, format::kMaxDims> strides{};

  // A C-contiguous (row-major) description. Throws Error(invalid_argument)
  // for ndim > 4, negative extents or an unsupported dtype.
  static TensorDesc contiguous(DType dtype, std::span<const std::int64_t> shape);

  [[nodiscard]] std::int64_t numel() const noexcept;
  [[nodiscard]] std::size_t nbytes() const noexcept { return static_cast<std::size_t>(numel()) * dtype.itemsize(); }
  [[nodiscard]] bool is_contiguous() const noexcept;
  // "uint16[512, 512]"
  [[nodiscard]] std::string to_string() const;
  // Same dtype and shape (strides may differ only where an extent is 1).
  [[nodiscard]] bool same_layout(const TensorDesc& other) const noexcept;
};

// Per-frame metadata a producer attaches when it publishes.
struct FrameMeta {
  std::uint32_t object_count = 0;
  float diameter = 0.0f;
  std::string json;  // UTF-8 JSON object, at most format::kMetaBytes bytes
};

// What a reader learns about one published frame.
struct FrameInfo {
  std::uint32_t slot = format::kNoSlot;
  std::uint64_t seq = 0;
  std::uint64_t frame_id = 0;
  std::uint64_t publish_realtime_ns = 0;
  std::uint64_t publish_monotonic_ns = 0;
  bool device_valid = false;  // the slot's device buffer holds this frame too (export kind cuda_ipc)
  FrameMeta meta;
};

// A non-owning, read-only view of one frame in host memory. Cheap to copy;
// valid only while the mapping (reader) and, for leases, the lease live.
struct HostView {
  const std::byte* data = nullptr;
  TensorDesc desc;

  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data, desc.nbytes()}; }
  template <class T>
  [[nodiscard]] const T* as() const noexcept {
    return reinterpret_cast<const T*>(data);
  }
};

}  // namespace cpipc::ipc
