#include "cpipc/io/convert.hpp"

#include <cstring>

#include "cpipc/error.hpp"

namespace cpipc::io {

namespace {

using ipc::DTypeCode;

// IEEE half to float, exactly (every half is a float).
float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: normalise
      exp = 113;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <class T, class Out>
void convert(const std::byte* p, std::vector<Out>& out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    out[i] = static_cast<Out>(v);
  }
}

}  // namespace

std::vector<float> to_float32(const Array& a, const std::string& what) {
  std::vector<float> out(static_cast<std::size_t>(a.desc.numel()));
  const auto d = a.desc.dtype;
  const std::byte* p = a.data.data();
  if (d.code == DTypeCode::float_ && d.bits == 32) {
    std::memcpy(out.data(), p, out.size() * 4);
  } else if (d.code == DTypeCode::float_ && d.bits == 64) {
    convert<double>(p, out);
  } else if (d.code == DTypeCode::float_ && d.bits == 16) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = half_to_float(h);
    }
  } else if (d.code == DTypeCode::uint && d.bits == 8) {
    convert<std::uint8_t>(p, out);
  } else if (d.code == DTypeCode::uint && d.bits == 16) {
    convert<std::uint16_t>(p, out);
  } else if (d.code == DTypeCode::uint && d.bits == 32) {
    convert<std::uint32_t>(p, out);
  } else if (d.code == DTypeCode::int_ && d.bits == 8) {
    convert<std::int8_t>(p, out);
  } else if (d.code == DTypeCode::int_ && d.bits == 16) {
    convert<std::int16_t>(p, out);
  } else if (d.code == DTypeCode::int_ && d.bits == 32) {
    convert<std::int32_t>(p, out);
  } else {
    throw Error(Errc::invalid_argument, what + " holds " + ipc::to_string(d) + "; expected float or 8-32-bit integers");
  }
  return out;
}

std::vector<std::uint32_t> to_labels(const Array& a, const std::string& what) {
  std::vector<std::uint32_t> out(static_cast<std::size_t>(a.desc.numel()));
  const auto d = a.desc.dtype;
  const std::byte* p = a.data.data();
  const auto reject = [&] {
    throw Error(Errc::invalid_argument,
                what + " holds " + ipc::to_string(d) + "; labels must be non-negative integers");
  };
  if (d.code == DTypeCode::uint && d.bits == 8) {
    convert<std::uint8_t>(p, out);
  } else if (d.code == DTypeCode::uint && d.bits == 16) {
    convert<std::uint16_t>(p, out);
  } else if (d.code == DTypeCode::uint && d.bits == 32) {
    convert<std::uint32_t>(p, out);
  } else if ((d.code == DTypeCode::int_ && (d.bits == 32 || d.bits == 64)) ||
             (d.code == DTypeCode::uint && d.bits == 64)) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::int64_t v;
      if (d.bits == 32) {
        std::int32_t v32;
        std::memcpy(&v32, p + 4 * i, 4);
        v = v32;
      } else {
        std::memcpy(&v, p + 8 * i, 8);
      }
      if (v < 0 || v > 0xffffffffll) reject();
      out[i] = static_cast<std::uint32_t>(v);
    }
  } else {
    reject();
  }
  return out;
}

}  // namespace cpipc::io
