#include "png_codec.hpp"

#include <png.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <optional>

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/io/labels.hpp"
#include "cpipc/io/probe.hpp"

namespace cpipc::io::detail {

namespace {

// libpng reports errors by calling our handler, which must not return and
// must not throw through libpng's C frames: it keeps the message and
// longjmps back to guarded(), which returns false; the C++ side throws.
struct Failure {
  char message[256] = {};
  int read_errno = 0;  // a failed read(2): an io error, not a corrupt file
};

void on_error(png_structp png, png_const_charp message) {
  auto* failure = static_cast<Failure*>(png_get_error_ptr(png));
  std::snprintf(failure->message, sizeof failure->message, "%s", message ? message : "unknown error");
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // nothing on stderr: what matters is an error

// Runs `calls` (libpng calls only: no object with a destructor may live in
// its frame, which a longjmp skips); false when libpng reported an error.
template <class Calls>
bool guarded(png_structp png, Calls&& calls) {
  if (setjmp(png_jmpbuf(png))) return false;
  calls();
  return true;
}

// PNG limits: width and height below 2^31; 16 Mi pixels on a side is beyond
// any microscope image, and check_decoded_size guards the total.
constexpr png_uint_32 kMaxSide = 1u << 24;
// Ancillary chunks (ICC profiles, text) kept in memory: libpng's default is
// 8 MB; a PNG's pixels are in IDAT, which this does not limit.
constexpr png_alloc_size_t kMaxChunk = 64u << 20;
// zlib.h's values (its headers may be missing where libpng's are packed).
constexpr int kZBestSpeed = 1;
constexpr int kZRle = 3;

class PngReader {
 public:
  explicit PngReader(Failure& failure)
      : png_(png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning)) {
    if (png_) info_ = png_create_info_struct(png_);
    if (!png_ || !info_) {
      png_destroy_read_struct(png_ ? &png_ : nullptr, nullptr, nullptr);
      throw std::bad_alloc();
    }
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
  ~PngReader() { png_destroy_read_struct(&png_, &info_, nullptr); }

  [[nodiscard]] png_structp png() const noexcept { return png_; }
  [[nodiscard]] png_infop info() const noexcept { return info_; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

class PngWriter {
 public:
  explicit PngWriter(Failure& failure)
      : png_(png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning)) {
    if (png_) info_ = png_create_info_struct(png_);
    if (!png_ || !info_) {
      png_destroy_write_struct(png_ ? &png_ : nullptr, nullptr);
      throw std::bad_alloc();
    }
  }
  PngWriter(const PngWriter&) = delete;
  PngWriter& operator=(const PngWriter&) = delete;
  ~PngWriter() { png_destroy_write_struct(&png_, &info_); }

  [[nodiscard]] png_structp png() const noexcept { return png_; }
  [[nodiscard]] png_infop info() const noexcept { return info_; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

// The file as libpng's input, read from RegularFile's descriptor.
struct Source {
  int fd = -1;
  Failure* failure = nullptr;
};

void read_from_fd(png_structp png, png_bytep out, png_size_t n) {
  auto* source = static_cast<Source*>(png_get_io_ptr(png));
  while (n > 0) {
    const ssize_t got = ::read(source->fd, out, n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      source->failure->read_errno = errno;
      png_error(png, "read error");
    }
    if (got == 0) png_error(png, "the file ends early");
    out += got;
    n -= static_cast<png_size_t>(got);
  }
}

// The encoded file, grown in memory; a failed allocation is a libpng error
// (an exception must not cross libpng).
struct Sink {
  std::vector<unsigned char>* bytes = nullptr;
  bool out_of_memory = false;
};

void write_to_memory(png_structp png, png_bytep data, png_size_t n) {
  auto* sink = static_cast<Sink*>(png_get_io_ptr(png));
  try {
    sink->bytes->insert(sink->bytes->end(), data, data + n);
    return;
  } catch (const std::bad_alloc&) {
    sink->out_of_memory = true;
  }
  png_error(png, "out of memory");
}

void flush_nothing(png_structp) {}

std::uint64_t saturating_product(std::initializer_list<std::uint64_t> factors) {
  std::uint64_t p = 1;
  for (const std::uint64_t f : factors) {
    if (f != 0 && p > std::numeric_limits<std::uint64_t>::max() / f) return std::numeric_limits<std::uint64_t>::max();
    p *= f;
  }
  return p;
}

}  // namespace

Array read_png(const std::string& path) {
  const RegularFile file = RegularFile::open(path);
  Failure failure;
  const auto fail = [&]() -> Array {
    if (failure.read_errno != 0) {
      throw Error(Errc::io, "cannot read '" + path + "': " + std::strerror(failure.read_errno));
    }
    throw Error(Errc::invalid_argument,
                "cannot read '" + path + "': corrupt or truncated PNG (" + failure.message + ")");
  };
  PngReader reader(failure);
  png_structp png = reader.png();
  png_infop info = reader.info();
  Source source{file.fd(), &failure};
  png_set_read_fn(png, &source, read_from_fd);
  png_set_user_limits(png, kMaxSide, kMaxSide);
  png_set_chunk_malloc_max(png, kMaxChunk);
  if (!guarded(png, [&] { png_read_info(png, info); })) return fail();

  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  const int depth = png_get_bit_depth(png, info);
  const int colour = png_get_color_type(png, info);
  std::uint64_t channels = 0;
  switch (colour) {
    case PNG_COLOR_TYPE_GRAY:
      channels = 1;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      channels = 2;
      break;
    case PNG_COLOR_TYPE_RGB:
      channels = 3;
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      channels = 4;
      break;
    case PNG_COLOR_TYPE_PALETTE:  // an indexed colour image is a colour image
      channels = png_get_valid(png, info, PNG_INFO_tRNS) ? 4 : 3;
      break;
    default:
      std::snprintf(failure.message, sizeof failure.message, "colour type %d", colour);
      return fail();
  }
  const bool wide = depth == 16;
  const std::uint64_t item = wide ? 2 : 1;
  check_decoded_size(path, saturating_product({height, width, channels, item}));

  const bool decoded = guarded(png, [&] {
    if (colour == PNG_COLOR_TYPE_PALETTE) {
      png_set_palette_to_rgb(png);
      if (channels == 4) png_set_tRNS_to_alpha(png);
    } else if (depth < 8) {
      png_set_packing(png);  // one byte per sample, the stored value (no scaling)
    }
    if (wide && std::endian::native == std::endian::little) png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
  });
  if (!decoded) return fail();
  const std::uint64_t row_bytes = std::uint64_t{width} * channels * item;
  if (png_get_rowbytes(png, info) != row_bytes) {
    std::snprintf(failure.message, sizeof failure.message, "unexpected row size");
    return fail();
  }

  Array out;
  const std::int64_t shape3[3] = {height, width, static_cast<std::int64_t>(channels)};
  out.desc = ipc::TensorDesc::contiguous(wide ? ipc::kUInt16 : ipc::kUInt8,
                                         std::span<const std::int64_t>(shape3, channels == 1 ? 2 : 3));
  out.data.resize(out.desc.nbytes());
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) {
    rows[y] = reinterpret_cast<png_bytep>(out.data.data()) + y * row_bytes;
  }
  png_bytepp row_pointers = rows.data();
  // png_read_end reads up to IEND, so that a file cut off after its pixels
  // is as corrupt as one cut off within them.
  if (!guarded(png, [&] {
        png_read_image(png, row_pointers);
        png_read_end(png, nullptr);
      })) {
    return fail();
  }
  return out;
}

std::vector<unsigned char> encode_png(const ipc::HostView& view) {
  const auto& d = view.desc;
  const auto refuse = [&](const std::string& why) {
    throw Error(Errc::invalid_argument, d.to_string() + " cannot be a PNG: " + why);
  };
  const bool gray = d.ndim == 2 || (d.ndim == 3 && d.shape[2] == 1);
  if (!gray && !(d.ndim == 3 && d.shape[2] >= 2 && d.shape[2] <= 4)) {
    refuse("a PNG is [H, W] or [H, W, 1|2|3|4]; save as .tif or .npy");
  }
  if (d.numel() == 0) refuse("a PNG has at least one pixel; save as .npy");
  if (!d.is_contiguous() || view.data == nullptr) refuse("the view is not C-contiguous; write a contiguous copy");
  if (d.shape[0] > std::int64_t{kMaxSide} || d.shape[1] > std::int64_t{kMaxSide})
    refuse("too large for a PNG; save as .tif or .npy");

  ipc::HostView v = view;
  std::optional<Array> narrowed;
  const bool byte = d.dtype == ipc::kUInt8 || d.dtype == ipc::DType{ipc::DTypeCode::bool_, 8, 1};
  if (!byte && d.dtype != ipc::kUInt16) {
    const bool integer = d.dtype.code == ipc::DTypeCode::int_ || d.dtype.code == ipc::DTypeCode::uint;
    const bool labels = gray && integer && d.dtype.bits >= 32;
    if (!labels) refuse("a PNG holds 8- or 16-bit unsigned integers; save as .tif or .npy");
    narrowed = labels_as_uint16(view);
    if (!narrowed) refuse("labels below 0 or above 65535 do not fit a PNG's 16 bits; save as .tif or .npy");
    v = narrowed->view();
  }
  const auto height = static_cast<png_uint_32>(d.shape[0]);
  const auto width = static_cast<png_uint_32>(d.shape[1]);
  const int channels = d.ndim == 3 ? static_cast<int>(d.shape[2]) : 1;
  const int depth = static_cast<int>(8 * v.desc.dtype.itemsize());
  static constexpr int kColour[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                     PNG_COLOR_TYPE_RGB_ALPHA};
  const std::size_t row_bytes = std::size_t{width} * static_cast<std::size_t>(channels) * (depth / 8);

  std::vector<unsigned char> bytes;
  bytes.reserve(v.desc.nbytes() / 4 + 1024);
  std::vector<png_bytep> rows(height);
  auto* pixels = const_cast<png_bytep>(reinterpret_cast<png_const_bytep>(v.data));  // libpng's rows are non-const
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = pixels + std::size_t{y} * row_bytes;
  png_bytepp row_pointers = rows.data();

  Failure failure;
  PngWriter writer(failure);
  png_structp png = writer.png();
  png_infop info = writer.info();
  Sink sink{&bytes};
  // OpenCV's defaults (Sub filter, fastest level, run-length strategy): fast
  // on label images, which are long runs of one value.
  const bool encoded = guarded(png, [&] {
    png_set_write_fn(png, &sink, write_to_memory, flush_nothing);
    png_set_IHDR(png, info, width, height, depth, kColour[channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
    png_set_compression_level(png, kZBestSpeed);
    png_set_compression_strategy(png, kZRle);
    png_write_info(png, info);
    if (depth == 16 && std::endian::native == std::endian::little) png_set_swap(png);
    png_write_image(png, row_pointers);
    png_write_end(png, nullptr);
  });
  if (sink.out_of_memory) throw std::bad_alloc();
  if (!encoded) throw Error(Errc::invalid_argument, d.to_string() + " cannot be a PNG: " + failure.message);
  return bytes;
}

}  // namespace cpipc::io::detail
