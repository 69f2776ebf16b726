// The interface of the image-codec plugin (libcpipc_codecs.so, OpenCV).
// OpenCV's image codecs pull in about 140 shared libraries, which would cost
// every cpipc process ~50 ms at start; loading them only when an image file
// is read or written keeps `cpipc ls`, `save x.npy` and small consumers fast.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array.hpp"

namespace cpipc::io::detail {

// Exceptions do not cross the plugin boundary: each entry returns 0 on
// success, else error_status(code) with `error` set to a one-line message.
struct CodecApi {
  int version;  // kCodecApiVersion
  // read_array's decoding: the first page, any depth OpenCV reads.
  int (*read)(const char* path, Array* out, std::string* error);
  // write_array's encoding, into memory: cpipc_io writes the bytes itself,
  // checked (OpenCV's imwrite reports no error that shows only at fclose,
  // such as a full disk, and leaves a short file).
  int (*encode)(const char* path, const ipc::HostView* view, const char* ext, std::vector<unsigned char>* out,
                std::string* error);
  // read_frames' decoding: every page of a TIFF, else the one image.
  int (*read_frames)(const char* path, std::vector<Array>* out, std::string* error);
};

// Errc values start at 0 (invalid_argument), so a failure is the code + 1.
[[nodiscard]] constexpr int error_status(Errc code) noexcept { return static_cast<int>(code) + 1; }
[[nodiscard]] constexpr Errc error_code(int status) noexcept { return static_cast<Errc>(status - 1); }

inline constexpr int kCodecApiVersion = 4;
inline constexpr const char* kCodecEntryPoint = "cpipc_codecs_api";

}  // namespace cpipc::io::detail
