#include <sys/stat.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cpipc/error.hpp"
#include "image.hpp"

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

}  // namespace

Array read_image(const std::string& path) {
  cv::Mat m = cv::imread(path, cv::IMREAD_UNCHANGED);
  if (m.empty()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw Error(Errc::not_found, "no file '" + path + "'");
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

void write_image(const std::string& path, const ipc::HostView& v, const std::string& ext) {
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

bool have_image_codecs() noexcept { return true; }

}  // namespace cpipc::io::detail
