// A libtiff handle whose messages stay with it: errors and warnings are
// collected per handle (files are read on several threads, and libtiff's
// global handlers would print to stderr), and the file is read through an
// io::RegularFile's descriptor, so libtiff never opens a path itself.
#pragma once

#include <tiffio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "cpipc/io/file.hpp"

namespace cpipc::io::detail {

struct TiffClose {
  void operator()(TIFF* tif) const noexcept { TIFFClose(tif); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffClose>;

// What libtiff said about one handle.
struct TiffMessages {
  std::string error;  // the first error, the one that explains the rest
  int errors = 0;
};

// Everything a handle needs while it is open; must outlive the TIFF*.
struct TiffSource {
  explicit TiffSource(RegularFile f) : file(std::move(f)) {}
  RegularFile file;
  std::uint64_t pos = 0;
  TiffMessages messages;
};

// Opens `source` for reading ("rm": no memory mapping, our own reads).
// Returns null when libtiff refuses it (source.messages says why).
[[nodiscard]] TiffPtr open_tiff(TiffSource& source);

// Sets handlers that collect libtiff's messages into `messages` and bounds
// one allocation; for TIFFClientOpenExt.
struct TiffOptionsFree {
  void operator()(TIFFOpenOptions* o) const noexcept { TIFFOpenOptionsFree(o); }
};
[[nodiscard]] std::unique_ptr<TIFFOpenOptions, TiffOptionsFree> tiff_options(TiffMessages& messages);

}  // namespace cpipc::io::detail
