// The interface of the image-codec plugin (libcpipc_codecs.so, OpenCV).
// OpenCV's image codecs pull in about 140 shared libraries, which would cost
// every cpipc process ~50 ms at start; loading them only when an image file
// is read or written keeps `cpipc ls`, `save x.npy` and small consumers fast.
#pragma once

#include <string>

#include "cpipc/io/array.hpp"

namespace cpipc::io::detail {

struct CodecApi {
  int version;  // kCodecApiVersion
  // Each returns 0 on success, else an Errc value (as int) with `error` set.
  int (*read)(const char* path, Array* out, std::string* error);
  int (*write)(const char* path, const ipc::HostView* view, const char* ext, std::string* error);
};

inline constexpr int kCodecApiVersion = 1;
inline constexpr const char* kCodecEntryPoint = "cpipc_codecs_api";

}  // namespace cpipc::io::detail
