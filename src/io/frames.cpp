#include "cpipc/io/frames.hpp"

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <system_error>

#include "cpipc/error.hpp"
#include "cpipc/io/npy.hpp"
#include "image.hpp"

namespace cpipc::io {

namespace {

namespace fs = std::filesystem;
using ipc::DTypeCode;

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw Error(Errc::invalid_argument, "cannot read '" + path + "': " + why);
}

// The checks every format shares, made before any decoder sees the file (so
// that OpenCV never gets to print its own messages about them).
void check_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) throw Error(Errc::not_found, "no file '" + path + "'");
  if (ec) throw Error(Errc::io, "cannot read '" + path + "': " + ec.message());
  if (fs::is_directory(st)) refuse(path, "it is a directory, not an image file");
  if (fs::is_regular_file(st) && fs::file_size(path, ec) == 0 && !ec) refuse(path, "the file is empty (0 bytes)");
}

// OpenCV decides the format from the content; a file that starts with none
// of these is not an image whatever its name says (a text file renamed .png).
void check_signature(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::io, "cannot open '" + path + "': " + std::strerror(errno));
  std::array<unsigned char, 8> head{};
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  const auto starts = [&](std::initializer_list<unsigned char> sig) {
    return static_cast<std::size_t>(in.gcount()) >= sig.size() && std::equal(sig.begin(), sig.end(), head.begin());
  };
  const bool png = starts({0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a});
  const bool tiff =
      starts({'I', 'I', 42, 0}) || starts({'M', 'M', 0, 42}) || starts({'I', 'I', 43, 0}) || starts({'M', 'M', 0, 43});
  const bool jpeg = starts({0xff, 0xd8, 0xff});
  const bool bmp = starts({'B', 'M'});
  if (!png && !tiff && !jpeg && !bmp) refuse(path, "not an image file (it has no PNG, TIFF, JPEG or BMP signature)");
}

// The number of pages of a classic TIFF, by walking its chain of image file
// directories (nullopt for BigTIFF, which is not walked). OpenCV stops
// silently at a directory cut off by truncation and returns the pages
// before it, so read_frames compares its count with this one.
std::optional<std::size_t> tiff_page_count(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::uint64_t>(in.tellg());
  const auto read_at = [&](std::uint64_t at, void* out, std::size_t n) {
    if (at + n > size) return false;
    in.seekg(static_cast<std::streamoff>(at));
    return static_cast<bool>(in.read(static_cast<char*>(out), static_cast<std::streamsize>(n)));
  };
  unsigned char head[8];
  if (!read_at(0, head, 8)) refuse(path, "corrupt or truncated TIFF (no header)");
  const bool little = head[0] == 'I';
  const auto u16 = [&](const unsigned char* b) { return little ? b[0] | b[1] << 8 : b[1] | b[0] << 8; };
  const auto u32 = [&](const unsigned char* b) {
    return little
               ? std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 | std::uint32_t{b[2]} << 16 | std::uint32_t{b[3]} << 24
               : std::uint32_t{b[3]} | std::uint32_t{b[2]} << 8 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[0]} << 24;
  };
  if (u16(head + 2) != 42) return std::nullopt;
  std::size_t pages = 0;
  std::set<std::uint64_t> seen;  // a chain that comes back to a directory never ends
  for (std::uint64_t ifd = u32(head + 4); ifd != 0; ++pages) {
    if (!seen.insert(ifd).second) {
      refuse(path, "corrupt TIFF (directory " + std::to_string(pages + 1) + " points back to an earlier one)");
    }
    unsigned char count[2], next[4];
    if (pages >= 1'000'000 || !read_at(ifd, count, 2) || !read_at(ifd + 2 + 12ull * u16(count), next, 4)) {
      refuse(path, "corrupt or truncated TIFF (directory " + std::to_string(pages + 1) + " is cut off)");
    }
    ifd = u32(next);
  }
  return pages;
}

// A .npy is one frame, channels last (see frames.hpp).
Array npy_frame(const std::string& path) {
  Array a = read_npy(path);
  const auto& d = a.desc;
  if (d.ndim == 3 && d.shape[2] > 8) {
    refuse(path, "a 3-D array is read as [H, W, C] with at most 8 channels, and this one is " + d.to_string() +
                     "; save a stack as one .npy per frame (or a multi-page TIFF), channels last");
  }
  if (d.ndim != 2 && d.ndim != 3) {
    refuse(path, "an image is [H, W] or [H, W, C], and this one is " + d.to_string());
  }
  return a;
}

void check_frame(const std::string& path, Array& frame) {
  auto& d = frame.desc;
  if (d.numel() == 0) refuse(path, "empty image (" + d.to_string() + ")");
  if (d.dtype.code == DTypeCode::bool_) {
    d.dtype = ipc::kUInt8;  // numpy's bool is one byte, 0 or 1
  } else if (d.dtype.bits == 64 && d.dtype.code != DTypeCode::float_) {
    refuse(path, ipc::to_string(d.dtype) + " pixels are not supported; convert to float32 or a 32-bit integer type");
  }
}

}  // namespace

std::vector<Array> read_frames(const std::string& path) {
  check_file(path);
  const std::string ext = detail::extension_of(path);
  std::vector<Array> frames;
  if (ext == ".npy") {
    frames.push_back(npy_frame(path));
  } else if (detail::is_image_ext(ext)) {
    check_signature(path);
    const auto pages = ext == ".tif" || ext == ".tiff" ? tiff_page_count(path) : std::nullopt;
    frames = detail::read_image_frames(path);
    if (pages && frames.size() != *pages) {
      refuse(path, "corrupt or truncated TIFF (" + std::to_string(*pages) + " pages, " + std::to_string(frames.size()) +
                       " could be decoded)");
    }
  } else {
    refuse(path, "unknown extension '" + ext + "'; use .tif, .png, .jpg, .bmp or .npy");
  }
  for (Array& frame : frames) check_frame(path, frame);
  return frames;
}

}  // namespace cpipc::io
