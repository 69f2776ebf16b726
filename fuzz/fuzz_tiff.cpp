// libFuzzer target: TIFF files as a user or another program might hand
// cpipc. read_tiff may refuse a file only with cpipc::Error; whatever it
// accepts must be exactly the bytes its shape says, and arrange_axes must
// either refuse it with an Error or give frames of the right size.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "../src/io/tiff_reader.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A memfd: a regular file without touching the disk, opened by path as
  // read_tiff opens files.
  static const int fd = ::memfd_create("fuzz.tif", 0);
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    for (cpipc::io::StoredImage& s : cpipc::io::detail::read_tiff(path)) {
      std::uint64_t n = s.dtype.itemsize();
      for (const std::int64_t e : s.shape) n *= static_cast<std::uint64_t>(e);
      if (n != s.data.size() || s.axes.size() != s.shape.size()) __builtin_trap();
      try {
        const cpipc::io::ImageFile f = cpipc::io::arrange_axes(std::move(s), {}, path);
        for (const cpipc::io::Image& img : f.frames) {
          if (static_cast<std::uint64_t>(img.array.desc.nbytes()) != img.array.data.size()) __builtin_trap();
        }
      } catch (const cpipc::Error&) {
      }
    }
  } catch (const cpipc::Error&) {
  }
  return 0;
}
