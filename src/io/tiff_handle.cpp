#include "tiff_handle.hpp"

#include <cstdarg>
#include <cstdio>
#include <limits>

namespace cpipc::io::detail {

namespace {

int on_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* m = static_cast<TiffMessages*>(user);
  if (m->errors++ == 0) {
    char text[512];
    std::vsnprintf(text, sizeof text, fmt, ap);
    m->error = (module && *module ? std::string(module) + ": " : std::string()) + text;
  }
  return 1;  // handled: nothing reaches the global handler (stderr)
}

// Warnings (unknown tags, ASCII fields without NUL, ...) do not stop a read.
int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

TiffSource& source_of(thandle_t h) { return *static_cast<TiffSource*>(h); }

tmsize_t read_proc(thandle_t h, void* buf, tmsize_t n) {
  TiffSource& s = source_of(h);
  try {
    const std::size_t got = s.file.read_at(s.pos, buf, static_cast<std::size_t>(n));
    s.pos += got;
    return static_cast<tmsize_t>(got);
  } catch (...) {  // an I/O error: libtiff reports a short read
    return -1;
  }
}

tmsize_t write_proc(thandle_t, void*, tmsize_t) { return -1; }

toff_t seek_proc(thandle_t h, toff_t off, int whence) {
  TiffSource& s = source_of(h);
  std::uint64_t base = whence == SEEK_CUR ? s.pos : whence == SEEK_END ? s.file.size() : 0;
  s.pos = base + off;  // libtiff passes negative offsets as wrapped unsigned values
  return s.pos;
}

int close_proc(thandle_t) { return 0; }  // the RegularFile closes its descriptor
toff_t size_proc(thandle_t h) { return source_of(h).file.size(); }
int map_proc(thandle_t, void**, toff_t*) { return 0; }
void unmap_proc(thandle_t, void*, toff_t) {}

}  // namespace

std::unique_ptr<TIFFOpenOptions, TiffOptionsFree> tiff_options(TiffMessages& messages) {
  std::unique_ptr<TIFFOpenOptions, TiffOptionsFree> o(TIFFOpenOptionsAlloc());
  TIFFOpenOptionsSetErrorHandlerExtR(o.get(), on_error, &messages);
  TIFFOpenOptionsSetWarningHandlerExtR(o.get(), on_warning, &messages);
  // One allocation (a strip, a tag array) above 2 GiB is a damaged file:
  // pixels are decoded into our own buffers, sized from the header.
  TIFFOpenOptionsSetMaxSingleMemAlloc(o.get(), tmsize_t{1} << 31);
  return o;
}

TiffPtr open_tiff(TiffSource& source) {
  const auto options = tiff_options(source.messages);
  return TiffPtr(TIFFClientOpenExt(source.file.path().c_str(), "rm", &source, read_proc, write_proc, seek_proc,
                                   close_proc, size_proc, map_proc, unmap_proc, options.get()));
}

}  // namespace cpipc::io::detail
