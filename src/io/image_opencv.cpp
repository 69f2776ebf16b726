#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "codecs_api.hpp"
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
    case CV_16F:
      return {DTypeCode::float_, 16, 1};
    default:
      throw Error(Errc::invalid_argument, "unsupported image depth " + std::to_string(depth));
  }
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

// A JPEG or BMP. Diagnostics are captured (see StderrCapture), so that a
// file OpenCV cannot read prints nothing but cpipc's one line.
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
                                            "' as an image (corrupt, truncated, empty, or not JPEG/BMP)" +
                                            (detail.empty() ? "" : " (" + detail + ")"));
  }
  return to_array(std::move(m));
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

}  // namespace
}  // namespace cpipc::io::detail

// Exceptions do not cross the plugin boundary: the API returns codes.
extern "C" __attribute__((visibility("default"))) const cpipc::io::detail::CodecApi* cpipc_codecs_api() {
  namespace d = cpipc::io::detail;
  // OpenCV's own log lines (imwrite_ and imread_ warnings) would make a
  // failure more than the one line cpipc prints.
  static const d::CodecApi api = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return d::CodecApi{d::kCodecApiVersion, &d::read_entry};
  }();
  return &api;
}
