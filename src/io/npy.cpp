#include "cpipc/io/npy.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/io/replace_file.hpp"
#include "cpipc/util/memory.hpp"
#include "npy_header.hpp"

namespace cpipc::io {

using ipc::DType;
using ipc::DTypeCode;

namespace {

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw Error(Errc::invalid_argument, "cannot read '" + path + "' as .npy: " + why);
}

std::string descr_of(DType d) {
  const char order = d.bits == 8 ? '|' : '<';
  switch (d.code) {
    case DTypeCode::int_:
      return std::string(1, order) + "i" + std::to_string(d.bits / 8);
    case DTypeCode::uint:
      return std::string(1, order) + "u" + std::to_string(d.bits / 8);
    case DTypeCode::float_:
      return std::string(1, order) + "f" + std::to_string(d.bits / 8);
    case DTypeCode::bool_:
      return "|b1";
    case DTypeCode::bfloat:
      break;
  }
  throw Error(Errc::invalid_argument, "dtype " + ipc::to_string(d) + " has no .npy equivalent; save as .bin");
}

DType dtype_of(const std::string& path, const std::string& descr) {
  if (descr.size() < 3) bad(path, "dtype '" + descr + "' is not supported");
  const char order = descr[0];
  const char kind = descr[1];
  int size = 0;
  try {
    size = std::stoi(descr.substr(2));
  } catch (...) {
    bad(path, "dtype '" + descr + "' is not supported");
  }
  if (order == '>' && size > 1)
    bad(path, "big-endian data ('" + descr + "'); convert with arr.astype(arr.dtype.newbyteorder('<'))");
  if (order != '<' && order != '|' && order != '=') bad(path, "dtype '" + descr + "' is not supported");
  DType d;
  d.bits = static_cast<std::uint8_t>(size * 8);
  switch (kind) {
    case 'i':
      d.code = DTypeCode::int_;
      break;
    case 'u':
      d.code = DTypeCode::uint;
      break;
    case 'f':
      d.code = DTypeCode::float_;
      break;
    case 'b':
      d.code = DTypeCode::bool_;
      break;
    default:
      bad(path, "dtype '" + descr + "' is not supported (integers, floats and bool are)");
  }
  if (size <= 0 || size > 8 || !ipc::is_supported(d)) bad(path, "dtype '" + descr + "' is not supported");
  return d;
}

// Finds the value text after 'key': in the header dict.
std::string value_of(const std::string& path, const std::string& header, const std::string& key) {
  const auto k = header.find("'" + key + "'");
  if (k == std::string::npos) bad(path, "header has no '" + key + "'");
  auto colon = header.find(':', k);
  if (colon == std::string::npos) bad(path, "malformed header");
  std::size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  if (start >= header.size()) bad(path, "malformed header");
  if (header[start] == '\'') {
    const auto end = header.find('\'', start + 1);
    if (end == std::string::npos) bad(path, "malformed header");
    return header.substr(start + 1, end - start - 1);
  }
  if (header[start] == '(') {
    const auto end = header.find(')', start);
    if (end == std::string::npos) bad(path, "malformed header");
    return header.substr(start + 1, end - start - 1);
  }
  const auto end = header.find_first_of(",}", start);
  if (end == std::string::npos) bad(path, "malformed header");
  return header.substr(start, end - start);
}

}  // namespace

namespace detail {

NpyHeader read_npy_header(const RegularFile& file) {
  const std::string& path = file.path();
  unsigned char lead[12] = {};
  const std::size_t got = file.read_at(0, lead, sizeof lead);
  if (got < 10 || std::memcmp(lead, "\x93NUMPY", 6) != 0) bad(path, "no .npy magic");
  const int major = lead[6];
  std::uint32_t header_len = 0;
  std::uint64_t header_at = 0;
  if (major == 1) {
    header_len = lead[8] | (lead[9] << 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (got < 12) bad(path, "truncated header");
    header_len = lead[8] | (lead[9] << 8) | (lead[10] << 16) | (static_cast<std::uint32_t>(lead[11]) << 24);
    header_at = 12;
  } else {
    bad(path, "format version " + std::to_string(major) + " is not supported");
  }
  if (header_len > (1u << 20)) bad(path, "truncated or oversized header");
  std::string header(header_len, '\0');
  if (file.read_at(header_at, header.data(), header_len) != header_len) bad(path, "truncated header");

  const DType dtype = dtype_of(path, value_of(path, header, "descr"));
  if (value_of(path, header, "fortran_order").find("True") != std::string::npos) {
    bad(path, "Fortran-ordered data; save it with np.ascontiguousarray(arr)");
  }
  std::vector<std::int64_t> shape;
  const std::string dims = value_of(path, header, "shape");
  std::size_t pos = 0;
  while (pos < dims.size()) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos >= dims.size()) break;
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(dims.substr(pos), &used);
    } catch (...) {
      bad(path, "malformed shape '(" + dims + ")'");
    }
    if (v < 0) bad(path, "negative extent in shape");
    shape.push_back(v);
    pos += used;
  }
  if (shape.size() > 4) bad(path, std::to_string(shape.size()) + " dimensions; segments hold at most 4");
  NpyHeader h;
  try {
    h.desc = ipc::TensorDesc::contiguous(dtype, shape);
  } catch (const Error& e) {
    bad(path, e.what());
  }
  h.data_offset = header_at + header_len;
  return h;
}

}  // namespace detail

Array read_npy(const std::string& path) {
  const RegularFile file = RegularFile::open(path);
  const detail::NpyHeader h = detail::read_npy_header(file);
  Array a;
  a.desc = h.desc;
  const std::uint64_t available = file.size() - std::min(file.size(), h.data_offset);
  if (available < a.desc.nbytes()) {
    bad(path, "data is truncated (" + std::to_string(available) + " of " + std::to_string(a.desc.nbytes()) + " bytes)");
  }
  const std::uint64_t memory = util::available_memory();
  if (memory > 0 && a.desc.nbytes() > memory) {
    throw Error(Errc::out_of_memory, "cannot read '" + path + "': it holds " + a.desc.to_string() + " (" +
                                         util::gib_string(static_cast<double>(a.desc.nbytes())) + "), more than the " +
                                         util::gib_string(static_cast<double>(memory)) +
                                         " of memory available; crop it or split it into tiles");
  }
  a.data.resize(a.desc.nbytes());
  if (file.read_at(h.data_offset, a.data.data(), a.data.size()) != a.data.size()) bad(path, "data could not be read");
  return a;
}

void write_npy(const std::string& path, const ipc::HostView& view) {
  if (!view.desc.is_contiguous()) throw Error(Errc::invalid_argument, "write_npy needs a C-contiguous view");
  std::string dict = "{'descr': '" + descr_of(view.desc.dtype) + "', 'fortran_order': False, 'shape': (";
  for (std::uint32_t i = 0; i < view.desc.ndim; ++i) {
    dict += std::to_string(view.desc.shape[i]);
    dict += (view.desc.ndim == 1 || i + 1 < view.desc.ndim) ? "," : "";
    if (i + 1 < view.desc.ndim) dict += " ";
  }
  dict += "), }";
  // Pad so that the data starts on a 64-byte boundary, header ends with '\n'.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  const auto len = static_cast<std::uint16_t>(dict.size());
  const char head[10] = {
      '\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  write_file(path, {{head, sizeof head},
                    dict,
                    {reinterpret_cast<const char*>(view.data), static_cast<std::size_t>(view.desc.nbytes())}});
}

}  // namespace cpipc::io
