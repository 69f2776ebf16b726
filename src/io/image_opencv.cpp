#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "codecs_api.hpp"
#include "cpipc/error.hpp"

namespace cpipc::io::detail {

using ipc::DType;
using ipc::DTypeCode;

namespace {

DType dtype_of_depth(int depth) {
  switch (depth) {
    case CV_8U:
      return {DTypeCode::uint, 8, 1};
    case CV_8S:
      return {DTypeCode::int_, 8, 1};
    case CV_16U:
      return {DTypeCode::uint, 16, 1};
    case CV_16S:
      return {DTypeCode::int_, 16, 1};
    case CV_32S:
      return {DTypeCode::int_, 32, 1};
    case CV_32F:
      return {DTypeCode::float_, 32, 1};
    case CV_64F:
      return {DTypeCode::float_, 64, 1};
    default:
      throw Error(Errc::invalid_argument, "unsupported image depth " + std::to_string(depth));
  }
}

int depth_of(DType d) {
  if (d == DType{DTypeCode::uint, 8, 1} || d == DType{DTypeCode::bool_, 8, 1}) return CV_8U;
  if (d == DType{DTypeCode::int_, 8, 1}) return CV_8S;
  if (d == DType{DTypeCode::uint, 16, 1}) return CV_16U;
  if (d == DType{DTypeCode::int_, 16, 1}) return CV_16S;
  if (d == DType{DTypeCode::int_, 32, 1}) return CV_32S;
  if (d == DType{DTypeCode::float_, 32, 1}) return CV_32F;
  if (d == DType{DTypeCode::float_, 64, 1}) return CV_64F;
  return -1;
}

// Largest value of an unsigned/signed integer view, for narrowing labels.
template <class T>
bool fits_uint16(const ipc::HostView& v) {
  const T* p = v.as<T>();
  for (std::int64_t i = 0, n = v.desc.numel(); i < n; ++i) {
    if (p[i] < 0 || static_cast<std::uint64_t>(p[i]) > 65535u) return false;
  }
  return true;
}

bool integer_labels_fit_uint16(const ipc::HostView& v) {
  const DType d = v.desc.dtype;
  if (d.code == DTypeCode::uint && d.bits == 32) return fits_uint16<std::uint32_t>(v);
  if (d.code == DTypeCode::uint && d.bits == 64) return fits_uint16<std::uint64_t>(v);
  if (d.code == DTypeCode::int_ && d.bits == 32) return fits_uint16<std::int32_t>(v);
  if (d.code == DTypeCode::int_ && d.bits == 64) return fits_uint16<std::int64_t>(v);
  return false;
}

template <class T>
cv::Mat narrowed(const ipc::HostView& v, int rows, int cols) {
  cv::Mat m(rows, cols, CV_16U);
  const T* p = v.as<T>();
  auto* q = m.ptr<std::uint16_t>();
  for (std::int64_t i = 0, n = v.desc.numel(); i < n; ++i) q[i] = static_cast<std::uint16_t>(p[i]);
  return m;
}

Array decode(const std::string& path) {
  // Before imread, which logs a warning of its own on stderr for a missing file.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(Errc::not_found, "no file '" + path + "'");
  cv::Mat m = cv::imread(path, cv::IMREAD_UNCHANGED);
  if (m.empty()) {
    throw Error(Errc::invalid_argument,
                "cannot decode '" + path + "' as an image (corrupt, truncated, empty, or not PNG/TIFF/JPEG/BMP)");
  }
  if (m.channels() == 3) cv::cvtColor(m, m, cv::COLOR_BGR2RGB);
  if (m.channels() == 4) cv::cvtColor(m, m, cv::COLOR_BGRA2RGBA);
  if (!m.isContinuous()) m = m.clone();
  Array a;
  std::vector<std::int64_t> shape = {m.rows, m.cols};
  if (m.channels() > 1) shape.push_back(m.channels());
  a.desc = ipc::TensorDesc::contiguous(dtype_of_depth(m.depth()), shape);
  a.data.resize(a.desc.nbytes());
  std::memcpy(a.data.data(), m.data, a.data.size());
  return a;
}

void encode(const std::string& path, const ipc::HostView& v, const std::string& ext) {
  const auto& d = v.desc;
  const bool gray = d.ndim == 2 || (d.ndim == 3 && d.shape[2] == 1);
  const bool colour = d.ndim == 3 && (d.shape[2] == 3 || d.shape[2] == 4);
  if (!gray && !colour) {
    throw Error(Errc::invalid_argument, "cannot write " + d.to_string() + " to '" + path +
                                            "': images are [H, W] or [H, W, 1|3|4]; save as .npy or .bin");
  }
  const auto too_big = std::numeric_limits<int>::max();
  if (d.shape[0] > too_big || d.shape[1] > too_big) throw Error(Errc::invalid_argument, "image too large");
  const int rows = static_cast<int>(d.shape[0]);
  const int cols = static_cast<int>(d.shape[1]);
  const int channels = d.ndim == 3 ? static_cast<int>(d.shape[2]) : 1;
  cv::Mat m;
  const bool png = ext == ".png";
  int depth = depth_of(d.dtype);
  if (gray && (depth < 0 || (png && depth != CV_8U && depth != CV_16U))) {
    // Label images wider than 16 bits: narrow when the labels fit (Cellpose
    // writes masks as uint16 PNG below 65 536 labels).
    if (!integer_labels_fit_uint16(v)) {
      throw Error(Errc::invalid_argument, "cannot write " + d.to_string() + " to '" + path + "': " +
                                              (png ? "a PNG holds 8 or 16 bits per pixel; save as .tif or .npy"
                                                   : "this dtype has no TIFF encoding here; save as .npy"));
    }
    if (d.dtype.code == DTypeCode::uint && d.dtype.bits == 32) m = narrowed<std::uint32_t>(v, rows, cols);
    if (d.dtype.code == DTypeCode::uint && d.dtype.bits == 64) m = narrowed<std::uint64_t>(v, rows, cols);
    if (d.dtype.code == DTypeCode::int_ && d.dtype.bits == 32) m = narrowed<std::int32_t>(v, rows, cols);
    if (d.dtype.code == DTypeCode::int_ && d.dtype.bits == 64) m = narrowed<std::int64_t>(v, rows, cols);
  } else {
    if (depth < 0 || (png && depth != CV_8U && depth != CV_16U)) {
      throw Error(Errc::invalid_argument, "cannot write " + d.to_string() + " to '" + path + "'; save as .npy");
    }
    m = cv::Mat(rows, cols, CV_MAKETYPE(depth, channels), const_cast<std::byte*>(v.data));
    if (channels == 3) cv::cvtColor(m, m, cv::COLOR_RGB2BGR);
    if (channels == 4) cv::cvtColor(m, m, cv::COLOR_RGBA2BGRA);
  }
  // A path that cannot be written fails here with errno's reason, before
  // libtiff can print its own message on stderr.
  if (std::FILE* probe = std::fopen(path.c_str(), "wb")) {
    std::fclose(probe);
  } else {
    throw Error(Errc::io, "cannot write '" + path + "': " + std::strerror(errno));
  }
  std::vector<int> params;
  if (ext == ".tif" || ext == ".tiff") params = {cv::IMWRITE_TIFF_COMPRESSION, 8};  // zlib/deflate, as Cellpose
  bool ok = false;
  try {
    ok = cv::imwrite(path, m, params);
  } catch (const cv::Exception& e) {
    throw Error(Errc::io, "cannot write '" + path + "': " + e.msg);
  }
  if (!ok) throw Error(Errc::io, "cannot write '" + path + "' (is the directory there and writable?)");
}

int guarded(std::string* error, const auto& body) {
  try {
    body();
    return 0;
  } catch (const Error& e) {
    *error = e.what();
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    *error = e.what();
    return static_cast<int>(Errc::io);
  }
}

int read_entry(const char* path, Array* out, std::string* error) {
  return guarded(error, [&] { *out = decode(path); });
}

int write_entry(const char* path, const ipc::HostView* view, const char* ext, std::string* error) {
  return guarded(error, [&] { encode(path, *view, ext); });
}

}  // namespace
}  // namespace cpipc::io::detail

// Exceptions do not cross the plugin boundary: the API returns codes.
extern "C" __attribute__((visibility("default"))) const cpipc::io::detail::CodecApi* cpipc_codecs_api() {
  static const cpipc::io::detail::CodecApi api{cpipc::io::detail::kCodecApiVersion, &cpipc::io::detail::read_entry,
                                               &cpipc::io::detail::write_entry};
  return &api;
}
