#include "cpipc/io/imagej_rois.hpp"

#include <uuid/uuid.h>
#include <zip.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>

#include "cpipc/error.hpp"
#include "cpipc/io/replace_file.hpp"

namespace cpipc::io {

namespace {

// ImageJ's roi format (ij/io/RoiDecoder.java), the values roifile writes.
constexpr std::int16_t kVersion = 229;
constexpr std::uint8_t kFreehand = 7;
constexpr std::int16_t kOverlayLabels = 8;
constexpr std::int16_t kOverlayBackgrounds = 32;
constexpr std::int16_t kSubPixelResolution = 128;
constexpr std::size_t kHeaderSize = 64;
constexpr std::size_t kHeader2Size = 64;

void put_be16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

void put_be32(std::string& out, std::uint32_t v) {
  put_be16(out, static_cast<std::uint16_t>(v >> 16));
  put_be16(out, static_cast<std::uint16_t>(v & 0xffff));
}

// numpy's astype(int16): the low 16 bits.
std::uint16_t low16(std::int64_t v) { return static_cast<std::uint16_t>(static_cast<std::uint64_t>(v) & 0xffff); }

struct ZipCloser {
  void operator()(zip_t* z) const noexcept { zip_discard(z); }
};

[[noreturn]] void zip_failure(const std::string& path, const std::string& what, zip_error_t* error) {
  throw Error(Errc::io, "cannot write '" + path + "': " + what + ": " + zip_error_strerror(error));
}

void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries) {
  if (entries.empty()) {
    // libzip writes no file for an archive without entries; Python's
    // zipfile (and so Cellpose) writes its end record alone: 22 bytes.
    write_file(path, {std::string_view("PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22)});
    return;
  }
  write_replacing(path, [&](const std::string& to) {
    int code = 0;
    std::unique_ptr<zip_t, ZipCloser> z(zip_open(to.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code));
    if (!z) {
      zip_error_t error;
      zip_error_init_with_code(&error, code);
      zip_failure(to, "zip_open", &error);
    }
    for (const auto& [name, bytes] : entries) {
      // The buffers outlive zip_close, which reads them.
      zip_source_t* source = zip_source_buffer(z.get(), bytes.data(), bytes.size(), 0);
      if (source == nullptr) zip_failure(to, "zip_source_buffer", zip_get_error(z.get()));
      const zip_int64_t index = zip_file_add(z.get(), name.c_str(), source, ZIP_FL_ENC_GUESS);
      if (index < 0) {
        zip_source_free(source);
        zip_failure(to, "adding " + name, zip_get_error(z.get()));
      }
      // Stored, as Python's zipfile.ZipFile writes by default.
      if (zip_set_file_compression(z.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) {
        zip_failure(to, "zip_set_file_compression", zip_get_error(z.get()));
      }
    }
    if (zip_close(z.get()) != 0) zip_failure(to, "zip_close", zip_get_error(z.get()));
    static_cast<void>(z.release());  // zip_close freed it
  });
}

}  // namespace

std::string rois_output_path(const std::string& dir, const std::string& stem) {
  return (std::filesystem::path(dir) / (stem + "_rois.zip")).string();
}

std::string encode_imagej_roi(const Polygon& points, std::string_view name) {
  if (points.empty()) throw Error(Errc::invalid_argument, "encode_imagej_roi: no points");
  for (const char c : name) {
    if (static_cast<unsigned char>(c) > 0x7f) {
      throw Error(Errc::invalid_argument, "encode_imagej_roi: the name must be ASCII");
    }
  }
  std::int64_t left = std::numeric_limits<std::int64_t>::max(), top = left;
  std::int64_t right = std::numeric_limits<std::int64_t>::min(), bottom = right;
  bool subpixel = false;  // roifile: any coordinate outside -5000..60535
  for (const auto& [x, y] : points) {
    left = std::min<std::int64_t>(left, x);
    top = std::min<std::int64_t>(top, y);
    right = std::max<std::int64_t>(right, x);
    bottom = std::max<std::int64_t>(bottom, y);
    subpixel = subpixel || x > 60535 || y > 60535 || x < -5000 || y < -5000;
  }
  const std::size_t n = points.size();
  std::string out;
  out.reserve(kHeaderSize + n * (subpixel ? 12 : 4) + kHeader2Size + 2 * name.size());
  out += "Iout";
  put_be16(out, static_cast<std::uint16_t>(kVersion));
  out += static_cast<char>(kFreehand);
  out += '\0';
  put_be16(out, low16(top));
  put_be16(out, low16(left));
  put_be16(out, low16(bottom + 1));
  put_be16(out, low16(right + 1));
  put_be16(out, static_cast<std::uint16_t>(n < 65536 ? n : 0));
  // Where a LINE keeps its end points; from 65536 points on, the count.
  if (n >= 65536) {
    put_be32(out, static_cast<std::uint32_t>(n));
    out.append(12, '\0');
  } else {
    out.append(16, '\0');
  }
  out.append(2 + 4 + 4 + 4 + 2, '\0');  // stroke width, shape roi size, stroke colour, fill colour, subtype
  put_be16(out,
           static_cast<std::uint16_t>(kOverlayBackgrounds | kOverlayLabels | (subpixel ? kSubPixelResolution : 0)));
  out.append(1 + 1 + 2 + 4, '\0');  // arrow style, arrow head size, rounded rect arc size, position
  const std::size_t extra = n * 4 + (subpixel ? n * 8 : 0);
  const std::size_t header2 = kHeaderSize + extra;
  put_be32(out, static_cast<std::uint32_t>(header2));
  // The coordinates, relative to the box: all x, then all y; then the
  // absolute ones as float32 with the subpixel option.
  for (const auto& p : points) put_be16(out, low16(std::int64_t{p[0]} - left));
  for (const auto& p : points) put_be16(out, low16(std::int64_t{p[1]} - top));
  if (subpixel) {
    for (const auto& p : points) put_be32(out, std::bit_cast<std::uint32_t>(static_cast<float>(p[0])));
    for (const auto& p : points) put_be32(out, std::bit_cast<std::uint32_t>(static_cast<float>(p[1])));
  }
  // Header 2: positions (c, z, t) 0, the name's offset and length, then
  // label colour, font size, group, opacity, image size, float stroke
  // width, properties and counters, all 0.
  out.append(4 + 4 + 4 + 4, '\0');
  put_be32(out, name.empty() ? 0 : static_cast<std::uint32_t>(header2 + kHeader2Size));
  put_be32(out, static_cast<std::uint32_t>(name.size()));
  out.append(4 + 2 + 1 + 1 + 4 + 4 + 4 + 4 + 4 + 12, '\0');
  for (const char c : name) put_be16(out, static_cast<unsigned char>(c));  // UTF-16BE
  return out;
}

std::string roi_name() {
  uuid_t id;
  uuid_generate_time_safe(id);  // "safe" or not, a unique name: the status does not matter here
  char text[37];
  uuid_unparse_lower(id, text);
  return text;
}

void write_imagej_rois(const std::string& path, const std::vector<Polygon>& polygons) {
  std::vector<std::pair<std::string, std::string>> entries;
  for (const Polygon& polygon : polygons) {
    if (polygon.empty()) continue;
    std::string name = roi_name();
    std::string bytes = encode_imagej_roi(polygon, name);
    entries.emplace_back(name + ".roi", std::move(bytes));
  }
  write_zip(path, entries);
}

}  // namespace cpipc::io
