// read_image_file: every image format to stored arrays with axes, then
// cpipc's order (arrange_axes).
#include "cpipc/error.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/probe.hpp"
#include "image.hpp"
#include "png_codec.hpp"
#include "tiff_reader.hpp"

namespace cpipc::io {

namespace {

using ipc::DTypeCode;

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw Error(Errc::invalid_argument, "cannot read '" + path + "': " + why);
}

// A decoded 2-D image: [H, W] or [H, W, C], C a sample of the page.
StoredImage page_image(Array a, const char* source) {
  StoredImage s;
  s.dtype = a.desc.dtype;
  s.shape.assign(a.desc.shape.begin(), a.desc.shape.begin() + a.desc.ndim);
  s.data = std::move(a.data);
  s.axes = a.desc.ndim == 3 ? "YXS" : "YX";
  s.source = source;
  return s;
}

// A .npy names no axes: all are guessed (or named by the user).
StoredImage npy_image(const std::string& path) {
  Array a = read_npy(path);
  StoredImage s;
  s.dtype = a.desc.dtype;
  s.shape.assign(a.desc.shape.begin(), a.desc.shape.begin() + a.desc.ndim);
  s.data = std::move(a.data);
  s.axes.assign(s.shape.size(), 'Q');
  return s;
}

// What the segmenter and the segment can take: no empty image, bool as
// uint8, no 64-bit integers.
void check_frame(const std::string& path, Array& frame) {
  auto& d = frame.desc;
  if (d.numel() == 0) refuse(path, "empty image (" + d.to_string() + ")");
  if (d.dtype.code == DTypeCode::bool_) {
    d.dtype = ipc::kUInt8;  // numpy's bool is one byte, 0 or 1
  } else if (d.dtype.bits == 64 && d.dtype.code != DTypeCode::float_) {
    refuse(path, ipc::to_string(d.dtype) + " pixels are not supported; convert to float32 or a 32-bit integer type");
  }
}

std::vector<StoredImage> stored_images(const std::string& path) {
  const std::string ext = detail::extension_of(path);
  if (ext != ".npy" && !detail::is_image_ext(ext)) {
    refuse(path, "unknown extension '" + ext + "'; use .tif, .png, .jpg, .bmp or .npy");
  }
  // The header alone first, so that no decoder sees a file that is not what
  // its name says, and nothing is allocated for an image that cannot fit.
  const ImageInfo info = probe_image(path);
  if (ext == ".npy") return {npy_image(path)};
  if (info.format == "NPY") refuse(path, "not an image file (it has no PNG, TIFF, JPEG or BMP signature)");
  if (info.format == "TIFF") return detail::read_tiff(path);
  if (info.format == "PNG") return {page_image(detail::read_png(path), "PNG")};
  return {page_image(detail::read_image(path, info), info.format.c_str())};  // JPEG, BMP: the OpenCV plugin
}

}  // namespace

ImageFile read_image_file(const std::string& path, const AxisOptions& options) {
  ImageFile file;
  for (StoredImage& stored : stored_images(path)) {
    ImageFile part = arrange_axes(std::move(stored), options, path);
    if (file.frames.empty()) {
      file.stored_axes = part.stored_axes;
      file.decided_by = part.decided_by;
    }
    for (Image& img : part.frames) {
      check_frame(path, img.array);
      file.frames.push_back(std::move(img));
    }
  }
  if (file.frames.empty()) refuse(path, "no image in it");
  return file;
}

}  // namespace cpipc::io
