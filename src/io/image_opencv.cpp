#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "codecs_api.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/labels.hpp"
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
    case CV_16F:
      return {DTypeCode::float_, 16, 1};
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

// A decoded image as an Array: channels in RGB(A) order, C-contiguous.
Array to_array(cv::Mat m) {
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

// While it decodes, libpng, libtiff and OpenCV 4.6 print their diagnostics
// straight to stderr ("libpng error: Read Error", "imread_(...): can't read
// header ..."). A bad file must give one line, so fd 2 goes to a temporary
// file meanwhile (one decode at a time: fd 2 is the process's): a failure
// puts the gist into its message; after a success, whatever was written
// there (another thread's output included) goes back to stderr.
class StderrCapture {
 public:
  StderrCapture() : lock_(mutex()) {
    std::fflush(stderr);
    std::cerr.flush();
    file_ = std::tmpfile();
    if (file_ != nullptr) saved_ = ::dup(STDERR_FILENO);
    if (saved_ >= 0 && ::dup2(::fileno(file_), STDERR_FILENO) < 0) {
      ::close(saved_);
      saved_ = -1;
    }
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
  ~StderrCapture() {
    const std::string text = finish();
    if (!text.empty() && !discard_) (void)!::write(STDERR_FILENO, text.data(), text.size());
  }

  // Restores stderr and returns what was written to it, once.
  std::string finish() {
    std::string text;
    if (saved_ >= 0) {
      std::fflush(stderr);
      std::cerr.flush();
      ::dup2(saved_, STDERR_FILENO);
      ::close(saved_);
      saved_ = -1;
      std::rewind(file_);
      char buf[4096];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file_)) > 0;) text.append(buf, n);
    }
    if (file_ != nullptr) std::fclose(file_);
    file_ = nullptr;
    return text;
  }
  void discard() { discard_ = true; }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  std::unique_lock<std::mutex> lock_;
  std::FILE* file_ = nullptr;
  int saved_ = -1;
  bool discard_ = false;
};

// The gist of what a codec printed, for an error message ("" if none).
std::string codec_diagnostic(const std::string& printed) {
  if (auto at = printed.find("libpng error: "); at != std::string::npos) {
    return "libpng: " + printed.substr(at + 14, printed.find('\n', at) - at - 14);
  }
  if (auto at = printed.find("TIFF_Error "); at != std::string::npos) {
    return "libtiff: " + printed.substr(at + 11, printed.find('\n', at) - at - 11);
  }
  return "";
}

// read_array's decoding: the first page. Diagnostics are captured as in
// decode_frames, so that a file OpenCV cannot read (a uint32 TIFF, which
// the baseline reader then reads) prints nothing.
Array decode(const std::string& path) {
  // Before imread, which logs a warning of its own on stderr for a missing file.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(Errc::not_found, "no file '" + path + "'");
  cv::Mat m;
  std::string detail;
  {
    StderrCapture capture;
    try {
      m = cv::imread(path, cv::IMREAD_UNCHANGED);
    } catch (const cv::Exception& e) {
      detail = e.err;
    }
    if (m.empty()) {
      capture.discard();
      if (detail.empty()) detail = codec_diagnostic(capture.finish());
    }
  }
  if (m.empty()) {
    throw Error(Errc::invalid_argument, "cannot decode '" + path +
                                            "' as an image (corrupt, truncated, empty, or not PNG/TIFF/JPEG/BMP)" +
                                            (detail.empty() ? "" : " (" + detail + ")"));
  }
  return to_array(std::move(m));
}

// Every page of a TIFF, else the one image. The caller (read_frames) has
// already checked that the file is there, not empty, and starts with an
// image signature, so a failure here is a damaged (or exotic) file.
std::vector<Array> decode_frames(const std::string& path) {
  const std::string ext = extension_of(path);
  std::vector<cv::Mat> pages;
  bool ok = false;
  bool unsupported_tiff = false;
  std::string detail;
  {
    StderrCapture capture;
    try {
      if (ext == ".tif" || ext == ".tiff") {
        ok = cv::imreadmulti(path, pages, cv::IMREAD_UNCHANGED);
      } else {
        pages.push_back(cv::imread(path, cv::IMREAD_UNCHANGED));
        ok = !pages.back().empty();
      }
    } catch (const cv::Exception& e) {
      ok = false;
      detail = e.err;
    }
    const auto empty = [](const cv::Mat& m) { return m.empty(); };
    ok = ok && !pages.empty() && std::none_of(pages.begin(), pages.end(), empty);
    if (!ok) {
      capture.discard();
      const std::string printed = capture.finish();
      // OpenCV 4.6's TiffDecoder::readHeader check for 32/64-bit samples.
      unsupported_tiff = printed.find("sample_format == SAMPLEFORMAT_IEEEFP") != std::string::npos;
      if (detail.empty()) detail = codec_diagnostic(printed);
    }
  }
  if (!ok && unsupported_tiff) {
    throw Error(Errc::invalid_argument, "cannot read '" + path +
                                            "': OpenCV 4 reads no 32- or 64-bit unsigned integer TIFF; "
                                            "save the image as .npy or with a signed or float type");
  }
  if (!ok) {
    throw Error(Errc::invalid_argument, "cannot read '" + path + "': corrupt or truncated image data" +
                                            (detail.empty() ? "" : " (" + detail + ")"));
  }
  std::vector<Array> frames;
  frames.reserve(pages.size());
  for (cv::Mat& m : pages) {
    try {
      frames.push_back(to_array(std::move(m)));
    } catch (const Error& e) {
      throw Error(e.code(), "cannot read '" + path + "': " + e.what());
    }
  }
  return frames;
}

// The file's bytes in `out`; the caller writes them (see CodecApi::encode).
void encode(const std::string& path, const ipc::HostView& v, const std::string& ext, std::vector<unsigned char>* out) {
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
  std::optional<Array> narrowed;  // holds m's pixels when labels are narrowed
  const bool png = ext == ".png";
  int depth = depth_of(d.dtype);
  if (gray && (depth < 0 || (png && depth != CV_8U && depth != CV_16U))) {
    // Label images wider than 16 bits: narrow when the labels fit (Cellpose
    // writes masks as uint16 PNG below 65 536 labels).
    narrowed = labels_as_uint16(v);
    if (!narrowed) {
      throw Error(Errc::invalid_argument, "cannot write " + d.to_string() + " to '" + path + "': " +
                                              (png ? "a PNG holds 8 or 16 bits per pixel; save as .tif or .npy"
                                                   : "this dtype has no TIFF encoding here; save as .npy"));
    }
    m = cv::Mat(rows, cols, CV_16U, narrowed->data.data());
  } else {
    if (depth < 0 || (png && depth != CV_8U && depth != CV_16U)) {
      throw Error(Errc::invalid_argument, "cannot write " + d.to_string() + " to '" + path + "'; save as .npy");
    }
    // Wraps the caller's pixels: converted into a new Mat, never in place.
    const cv::Mat pixels(rows, cols, CV_MAKETYPE(depth, channels), const_cast<std::byte*>(v.data));
    if (channels == 3) {
      cv::cvtColor(pixels, m, cv::COLOR_RGB2BGR);
    } else if (channels == 4) {
      cv::cvtColor(pixels, m, cv::COLOR_RGBA2BGRA);
    } else {
      m = pixels;
    }
  }
  std::vector<int> params;
  if (ext == ".tif" || ext == ".tiff") params = {cv::IMWRITE_TIFF_COMPRESSION, 8};  // zlib/deflate, as Cellpose
  bool ok = false;
  try {
    ok = cv::imencode(ext, m, *out, params);
  } catch (const cv::Exception& e) {
    throw Error(Errc::io, "cannot write '" + path + "': OpenCV cannot encode it (" + e.err + "); save as .npy");
  }
  if (!ok) throw Error(Errc::io, "cannot write '" + path + "': OpenCV cannot encode it; save as .npy");
}

int guarded(std::string* error, const auto& body) {
  try {
    body();
    return 0;
  } catch (const Error& e) {
    *error = e.what();
    return error_status(e.code());
  } catch (const std::exception& e) {
    *error = e.what();
    return error_status(Errc::io);
  }
}

int read_entry(const char* path, Array* out, std::string* error) {
  return guarded(error, [&] { *out = decode(path); });
}

int read_frames_entry(const char* path, std::vector<Array>* out, std::string* error) {
  return guarded(error, [&] { *out = decode_frames(path); });
}

int encode_entry(const char* path, const ipc::HostView* view, const char* ext, std::vector<unsigned char>* out,
                 std::string* error) {
  return guarded(error, [&] { encode(path, *view, ext, out); });
}

}  // namespace
}  // namespace cpipc::io::detail

// Exceptions do not cross the plugin boundary: the API returns codes.
extern "C" __attribute__((visibility("default"))) const cpipc::io::detail::CodecApi* cpipc_codecs_api() {
  namespace d = cpipc::io::detail;
  // OpenCV's own log lines (imwrite_ and imread_ warnings) would make a
  // failure more than the one line cpipc prints.
  static const d::CodecApi api = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return d::CodecApi{d::kCodecApiVersion, &d::read_entry, &d::encode_entry, &d::read_frames_entry};
  }();
  return &api;
}
