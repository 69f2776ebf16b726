#include "cpipc/io/frames.hpp"

#include "cpipc/error.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/probe.hpp"
#include "image.hpp"

namespace cpipc::io {

namespace {

using ipc::DTypeCode;

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw Error(Errc::invalid_argument, "cannot read '" + path + "': " + why);
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
  const std::string ext = detail::extension_of(path);
  if (ext != ".npy" && !detail::is_image_ext(ext)) {
    refuse(path, "unknown extension '" + ext + "'; use .tif, .png, .jpg, .bmp or .npy");
  }
  // The header alone, before any decoder sees the file (so that OpenCV never
  // prints its own messages about a bad one, and nothing is allocated for an
  // image that cannot fit).
  const ImageInfo info = probe_image(path);
  std::vector<Array> frames;
  if (ext == ".npy") {
    frames.push_back(npy_frame(path));
  } else {
    if (info.format == "NPY") refuse(path, "not an image file (it has no PNG, TIFF, JPEG or BMP signature)");
    frames = detail::read_image_frames(path, info);
    if (info.format == "TIFF" && !info.pages.empty() && frames.size() != info.pages.size()) {
      refuse(path, "corrupt or truncated TIFF (" + std::to_string(info.pages.size()) + " pages, " +
                       std::to_string(frames.size()) + " could be decoded)");
    }
  }
  for (Array& frame : frames) check_frame(path, frame);
  return frames;
}

}  // namespace cpipc::io
