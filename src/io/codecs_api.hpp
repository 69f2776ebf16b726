// The interface of the image-codec plugin (libcpipc_codecs.so, OpenCV),
// which reads JPEG and BMP; TIFF and PNG are libtiff's and libpng's.
// OpenCV's image codecs pull in about 140 shared libraries, which would cost
// every cpipc process ~50 ms at start; loading them only when an image file
// is read or written keeps `cpipc ls`, `save x.npy` and small consumers fast.
#pragma once

#include <cstdint>
#include <string>

#include "cpipc/error.hpp"
#include "cpipc/io/array.hpp"

namespace cpipc::io::detail {

// Exceptions do not cross the plugin boundary: each entry returns 0 on
// success, else error_status(code) with `error` set to a one-line message.
struct CodecApi {
  int version;  // kCodecApiVersion
  // A JPEG or BMP: [H, W] or [H, W, C] in RGB(A) order.
  int (*read)(const char* path, Array* out, std::string* error);
};

// Errc values start at 0 (invalid_argument), so a failure is the code + 1.
[[nodiscard]] constexpr int error_status(Errc code) noexcept { return static_cast<int>(code) + 1; }
[[nodiscard]] constexpr Errc error_code(int status) noexcept { return static_cast<Errc>(status - 1); }

inline constexpr int kCodecApiVersion = 5;
inline constexpr const char* kCodecEntryPoint = "cpipc_codecs_api";

}  // namespace cpipc::io::detail
