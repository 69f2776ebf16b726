#include "cpipc/ipc/tensor.hpp"

#include <cstdio>
#include <limits>

#include "cpipc/error.hpp"

namespace cpipc::ipc {

bool is_supported(DType d) noexcept {
  if (d.lanes != 1) return false;
  switch (d.code) {
    case DTypeCode::int_:
    case DTypeCode::uint:
      return d.bits == 8 || d.bits == 16 || d.bits == 32 || d.bits == 64;
    case DTypeCode::float_:
      return d.bits == 16 || d.bits == 32 || d.bits == 64;
    case DTypeCode::bfloat:
      return d.bits == 16;
    case DTypeCode::bool_:
      return d.bits == 8;
  }
  return false;
}

std::string to_string(DType d) {
  if (is_supported(d)) {
    switch (d.code) {
      case DTypeCode::int_:
        return "int" + std::to_string(d.bits);
      case DTypeCode::uint:
        return "uint" + std::to_string(d.bits);
      case DTypeCode::float_:
        return "float" + std::to_string(d.bits);
      case DTypeCode::bfloat:
        return "bfloat16";
      case DTypeCode::bool_:
        return "bool";
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "dtype(code=%u,bits=%u,lanes=%u)", static_cast<unsigned>(d.code),
                static_cast<unsigned>(d.bits), static_cast<unsigned>(d.lanes));
  return buf;
}

std::optional<DType> parse_dtype(std::string_view name) noexcept {
  static constexpr DType all[] = {{DTypeCode::int_, 8, 1},    {DTypeCode::int_, 16, 1},   {DTypeCode::int_, 32, 1},
                                  {DTypeCode::int_, 64, 1},   {DTypeCode::uint, 8, 1},    {DTypeCode::uint, 16, 1},
                                  {DTypeCode::uint, 32, 1},   {DTypeCode::uint, 64, 1},   {DTypeCode::float_, 16, 1},
                                  {DTypeCode::float_, 32, 1}, {DTypeCode::float_, 64, 1}, {DTypeCode::bfloat, 16, 1},
                                  {DTypeCode::bool_, 8, 1}};
  for (const DType& d : all) {
    if (to_string(d) == name) return d;
  }
  return std::nullopt;
}

TensorDesc TensorDesc::contiguous(DType dtype, std::span<const std::int64_t> shape) {
  if (!is_supported(dtype)) throw Error(Errc::invalid_argument, "unsupported dtype " + ipc::to_string(dtype));
  if (shape.size() > format::kMaxDims) {
    throw Error(Errc::invalid_argument, "a segment holds at most 4 dimensions, got " + std::to_string(shape.size()));
  }
  TensorDesc d;
  d.dtype = dtype;
  d.ndim = static_cast<std::uint32_t>(shape.size());
  std::int64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] < 0) throw Error(Errc::invalid_argument, "negative extent in shape");
    d.shape[i] = shape[i];
    d.strides[i] = stride;
    if (shape[i] > 0 && __builtin_mul_overflow(stride, shape[i], &stride)) {
      throw Error(Errc::invalid_argument, "shape too large");
    }
  }
  std::int64_t n = 1;
  for (std::uint32_t i = 0; i < d.ndim; ++i) {
    if (__builtin_mul_overflow(n, d.shape[i], &n) ||
        __builtin_mul_overflow(n, static_cast<std::int64_t>(dtype.itemsize()), &stride)) {
      throw Error(Errc::invalid_argument, "shape too large");
    }
  }
  return d;
}

std::int64_t TensorDesc::numel() const noexcept {
  // A zero extent anywhere makes the product 0, whatever the others are
  // (and they may be huge: an empty tensor is still a valid header).
  for (std::uint32_t i = 0; i < ndim; ++i) {
    if (shape[i] == 0) return 0;
  }
  std::int64_t n = 1;
  for (std::uint32_t i = 0; i < ndim; ++i) {
    if (__builtin_mul_overflow(n, shape[i], &n)) return std::numeric_limits<std::int64_t>::max();
  }
  return n;
}

bool TensorDesc::is_contiguous() const noexcept {
  if (numel() == 0) return true;  // no element to be out of place (as numpy and DLPack see it)
  std::int64_t expected = 1;
  for (std::uint32_t i = ndim; i-- > 0;) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

bool TensorDesc::same_layout(const TensorDesc& other) const noexcept {
  if (dtype != other.dtype || ndim != other.ndim) return false;
  for (std::uint32_t i = 0; i < ndim; ++i) {
    if (shape[i] != other.shape[i]) return false;
    if (shape[i] != 1 && strides[i] != other.strides[i]) return false;
  }
  return true;
}

std::string TensorDesc::to_string() const {
  std::string s = ipc::to_string(dtype) + "[";
  for (std::uint32_t i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace cpipc::ipc
