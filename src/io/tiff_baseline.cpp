#include "tiff_baseline.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <span>

#if CPIPC_HAVE_ZLIB
#include <zlib.h>
#endif

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/util/memory.hpp"

namespace cpipc::io::detail {

namespace {

using ipc::DType;
using ipc::DTypeCode;

static_assert(std::endian::native == std::endian::little, "Array data is little-endian");

// The tags this reader looks at (TIFF 6.0, section 8, and part 2).
enum Tag : std::uint16_t {
  kImageWidth = 256,
  kImageLength = 257,
  kBitsPerSample = 258,
  kCompression = 259,
  kPhotometric = 262,
  kStripOffsets = 273,
  kSamplesPerPixel = 277,
  kRowsPerStrip = 278,
  kStripByteCounts = 279,
  kPlanarConfiguration = 284,
  kPredictor = 317,
  kTileWidth = 322,
  kTileOffsets = 324,
  kSampleFormat = 339,
};

// Bytes per value of a field type; 0 for types TIFF 6.0 does not define,
// which a reader skips.
std::uint32_t type_size(std::uint16_t type) {
  switch (type) {
    case 1:  // BYTE
    case 2:  // ASCII
    case 6:  // SBYTE
    case 7:  // UNDEFINED
      return 1;
    case 3:  // SHORT
    case 8:  // SSHORT
      return 2;
    case 4:   // LONG
    case 9:   // SLONG
    case 11:  // FLOAT
    case 13:  // IFD
      return 4;
    case 5:   // RATIONAL
    case 10:  // SRATIONAL
    case 12:  // DOUBLE
      return 8;
    default:
      return 0;
  }
}

std::string compression_name(std::uint64_t c) {
  switch (c) {
    case 2:
      return "CCITT RLE";
    case 3:
      return "CCITT Group 3";
    case 4:
      return "CCITT Group 4";
    case 5:
      return "LZW";
    case 6:
    case 7:
      return "JPEG";
    case 8:
    case 32946:
      return "Deflate (zlib)";
    case 32773:
      return "PackBits";
    case 34925:
      return "LZMA";
    case 50000:
      return "Zstandard";
    case 50001:
      return "WebP";
    default:
      return "compression scheme " + std::to_string(c);
  }
}

// One directory entry: its type, count and the 4 bytes that hold the value
// (when it fits) or its offset.
struct Entry {
  std::uint16_t type = 0;
  std::uint32_t count = 0;
  unsigned char value[4] = {};
};

using Directory = std::map<std::uint16_t, Entry>;

class TiffFile {
 public:
  explicit TiffFile(const std::string& path) : path_(path), file_(RegularFile::open(path)), size_(file_.size()) {}

  std::vector<Array> read(std::size_t max_pages) {
    unsigned char head[8];
    if (size_ < 8) damaged("no header");
    read_at(0, head, 8, "the header");
    const bool ii = head[0] == 'I' && head[1] == 'I';
    if (!ii && !(head[0] == 'M' && head[1] == 'M')) {
      throw Error(Errc::invalid_argument, "cannot read '" + path_ + "': not a TIFF file (no II or MM signature)");
    }
    little_ = ii;
    if (u16(head + 2) == 43) unsupported("a BigTIFF");
    if (u16(head + 2) != 42) {
      throw Error(Errc::invalid_argument, "cannot read '" + path_ + "': not a TIFF file (no 42 after the byte order)");
    }
    std::vector<Array> pages;
    std::set<std::uint64_t> seen;  // a chain that loops would never end
    for (std::uint64_t ifd = u32(head + 4); ifd != 0 && pages.size() < max_pages;) {
      if (!seen.insert(ifd).second) damaged("the chain of directories loops");
      pages.push_back(page(ifd, pages.size() + 1, ifd));
    }
    if (pages.empty() && max_pages > 0) damaged("no image directory");
    return pages;
  }

 private:
  [[noreturn]] void damaged(const std::string& what) const {
    throw Error(Errc::invalid_argument, "cannot read '" + path_ + "': corrupt or truncated TIFF (" + what + ")");
  }

  // A valid TIFF outside what this reader decodes.
  [[noreturn]] void unsupported(const std::string& what) const {
    throw Error(Errc::invalid_argument,
                "cannot read '" + path_ + "': it is " + what +
                    ", and cpipc's own TIFF reader (without OpenCV, and for more than 4 samples per pixel) reads "
                    "only uncompressed" +
                    (kDeflate ? " and Deflate" : "") + " TIFF; convert it to .npy or an uncompressed TIFF");
  }

#if CPIPC_HAVE_ZLIB
  static constexpr bool kDeflate = true;
#else
  static constexpr bool kDeflate = false;
#endif

  // Inflates `in` (one strip) into exactly `out.size()` bytes; bytes past
  // those (a writer's padding) are ignored, as libtiff ignores them.
  void inflate_strip(const std::vector<unsigned char>& in, std::span<std::byte> out, const std::string& strip) {
#if CPIPC_HAVE_ZLIB
    z_stream z{};
    if (inflateInit(&z) != Z_OK) throw Error(Errc::out_of_memory, "cannot read '" + path_ + "': zlib failed to start");
    z.next_in = const_cast<unsigned char*>(in.data());
    std::size_t in_left = in.size();
    std::size_t done = 0;
    int rc = Z_OK;
    // zlib counts in uInt: feed and drain in pieces of at most 1 GiB.
    while (rc == Z_OK && done < out.size()) {
      const std::size_t in_now = std::min<std::size_t>(in_left, std::size_t{1} << 30);
      const std::size_t out_now = std::min<std::size_t>(out.size() - done, std::size_t{1} << 30);
      z.avail_in = static_cast<uInt>(in_now);
      z.next_out = reinterpret_cast<unsigned char*>(out.data() + done);
      z.avail_out = static_cast<uInt>(out_now);
      rc = inflate(&z, Z_NO_FLUSH);
      in_left -= in_now - z.avail_in;
      done += out_now - z.avail_out;
    }
    inflateEnd(&z);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) damaged(strip + " is not valid Deflate data");
    if (done != out.size()) {
      damaged(strip + " inflates to " + std::to_string(done) + " bytes, not " + std::to_string(out.size()));
    }
#else
    (void)in, (void)out, (void)strip;
#endif
  }

  // Predictor 2 (horizontal differencing): each sample was stored as the
  // difference from the same sample of the pixel to its left.
  template <class T>
  static void undo_differencing(std::vector<std::byte>& data, std::uint64_t row_samples, std::uint64_t samples) {
    auto* v = reinterpret_cast<T*>(data.data());
    const std::size_t n = data.size() / sizeof(T);
    for (std::size_t row = 0; row + row_samples <= n; row += row_samples) {
      for (std::uint64_t i = samples; i < row_samples; ++i)
        v[row + i] = static_cast<T>(v[row + i] + v[row + i - samples]);
    }
  }

  void read_at(std::uint64_t at, void* out, std::uint64_t n, const std::string& what) {
    if (at > size_ || n > size_ - at) damaged(what + " lies past the end of the file");
    if (file_.read_at(at, out, n) != n) damaged(what + " could not be read");
  }

  [[nodiscard]] std::uint16_t u16(const unsigned char* b) const {
    return static_cast<std::uint16_t>(little_ ? b[0] | b[1] << 8 : b[1] | b[0] << 8);
  }
  [[nodiscard]] std::uint32_t u32(const unsigned char* b) const {
    if (little_)
      return std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 | std::uint32_t{b[2]} << 16 | std::uint32_t{b[3]} << 24;
    return std::uint32_t{b[3]} | std::uint32_t{b[2]} << 8 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[0]} << 24;
  }

  // The values of an integer (BYTE, SHORT or LONG) field; empty if absent.
  std::vector<std::uint64_t> values(const Directory& dir, std::uint16_t tag) {
    const auto it = dir.find(tag);
    if (it == dir.end()) return {};
    const Entry& e = it->second;
    if (e.type != 1 && e.type != 3 && e.type != 4) {
      damaged("tag " + std::to_string(tag) + " has field type " + std::to_string(e.type));
    }
    if (e.count == 0) damaged("tag " + std::to_string(tag) + " has no value");
    const std::uint64_t size = type_size(e.type);
    const std::uint64_t bytes = size * e.count;
    std::vector<unsigned char> raw(4);
    if (bytes <= 4) {
      std::memcpy(raw.data(), e.value, 4);
    } else {
      // Checked before the allocation: a hostile count must not allocate gigabytes.
      if (bytes > size_) damaged("tag " + std::to_string(tag) + " has more values than the file has bytes");
      raw.resize(bytes);
      read_at(u32(e.value), raw.data(), bytes, "the values of tag " + std::to_string(tag));
    }
    std::vector<std::uint64_t> out(e.count);
    for (std::uint32_t i = 0; i < e.count; ++i) {
      const unsigned char* p = raw.data() + i * size;
      out[i] = size == 1 ? p[0] : size == 2 ? u16(p) : u32(p);
    }
    return out;
  }

  std::uint64_t scalar(const Directory& dir, std::uint16_t tag, std::uint64_t fallback) {
    const auto v = values(dir, tag);
    return v.empty() ? fallback : v[0];
  }

  // A per-sample field (BitsPerSample, SampleFormat): one value for every
  // sample, which this reader needs to be the same.
  std::uint64_t per_sample(const Directory& dir, std::uint16_t tag, std::uint64_t fallback, const char* name) {
    const auto v = values(dir, tag);
    if (v.empty()) return fallback;
    if (std::any_of(v.begin(), v.end(), [&](std::uint64_t x) { return x != v[0]; })) {
      unsupported(std::string("a TIFF whose samples differ in ") + name);
    }
    return v[0];
  }

  // Page `number` (from 1), its directory at `offset`; sets `next`.
  Array page(std::uint64_t offset, std::size_t number, std::uint64_t& next) {
    const std::string where = "directory " + std::to_string(number);
    unsigned char count[2];
    read_at(offset, count, 2, where);
    const std::uint64_t entries = u16(count);
    std::vector<unsigned char> raw(entries * 12 + 4);
    read_at(offset + 2, raw.data(), raw.size(), where);
    Directory dir;
    for (std::uint64_t i = 0; i < entries; ++i) {
      const unsigned char* p = raw.data() + i * 12;
      Entry e;
      e.type = u16(p + 2);
      e.count = u32(p + 4);
      std::memcpy(e.value, p + 8, 4);
      if (type_size(e.type) != 0) dir.emplace(u16(p), e);  // the first of duplicates
    }
    next = u32(raw.data() + entries * 12);
    const std::string page = number > 1 ? " (page " + std::to_string(number) + ")" : "";

    if (dir.count(kTileWidth) || dir.count(kTileOffsets)) unsupported("a tiled TIFF" + page);
    const auto compression = scalar(dir, kCompression, 1);
    const bool deflate = compression == 8 || compression == 32946;
    if (compression != 1 && !(deflate && kDeflate)) {
      unsupported("a TIFF compressed with " + compression_name(compression) + " (Compression " +
                  std::to_string(compression) + ")" + page);
    }
    const auto predictor = scalar(dir, kPredictor, 1);
    const std::uint64_t samples = scalar(dir, kSamplesPerPixel, 1);
    if (samples == 0) damaged("SamplesPerPixel is 0" + page);
    if (samples > 1 && scalar(dir, kPlanarConfiguration, 1) != 1) {
      unsupported("a TIFF with separate colour planes (PlanarConfiguration 2)" + page);
    }
    const auto photometric = scalar(dir, kPhotometric, 1);
    const bool white_is_zero = photometric == 0;
    switch (photometric) {
      case 0:  // WhiteIsZero
        if (samples > 1) unsupported("a WhiteIsZero TIFF of " + std::to_string(samples) + " samples per pixel" + page);
        break;
      case 1:  // BlackIsZero
        break;
      case 2:
        if (samples < 3) damaged("an RGB image of " + std::to_string(samples) + " samples per pixel" + page);
        break;
      case 3:
        unsupported("a palette-colour TIFF" + page);
      case 5:
        unsupported("a CMYK (separated) TIFF" + page);
      case 6:
        unsupported("a YCbCr TIFF" + page);
      default:
        unsupported("a TIFF of PhotometricInterpretation " + std::to_string(photometric) + page);
    }
    const std::uint64_t bits = per_sample(dir, kBitsPerSample, 1, "bits");
    const std::uint64_t format = per_sample(dir, kSampleFormat, 1, "format");
    if (bits < 8) unsupported("a " + std::to_string(bits) + "-bit TIFF" + page);
    if (format != 1 && format != 2 && format != 3) {
      unsupported("a TIFF of SampleFormat " + std::to_string(format) + page);
    }
    const bool integer_ok = format != 3 && (bits == 8 || bits == 16 || bits == 32);
    const bool float_ok = format == 3 && (bits == 16 || bits == 32 || bits == 64);
    if (!integer_ok && !float_ok) {
      unsupported("a TIFF of " + std::to_string(bits) + "-bit " + (format == 3 ? "float" : "integer") + " samples" +
                  page);
    }
    if (predictor == 3) unsupported("a TIFF with the floating-point predictor (Predictor 3)" + page);
    if (predictor != 1 && predictor != 2) damaged("Predictor " + std::to_string(predictor) + page);
    if (predictor == 2 && format == 3) unsupported("a float TIFF with horizontal differencing (Predictor 2)" + page);
    const DType dtype{format == 1   ? DTypeCode::uint
                      : format == 2 ? DTypeCode::int_
                                    : DTypeCode::float_,
                      static_cast<std::uint8_t>(bits), 1};

    const std::uint64_t width = scalar(dir, kImageWidth, 0);
    const std::uint64_t height = scalar(dir, kImageLength, 0);
    if (!dir.count(kImageWidth) || !dir.count(kImageLength)) damaged("no ImageWidth or ImageLength" + page);
    Array a;
    std::vector<std::int64_t> shape = {static_cast<std::int64_t>(height), static_cast<std::int64_t>(width)};
    if (samples > 1) shape.push_back(static_cast<std::int64_t>(samples));
    const std::uint64_t row_bytes = width * samples * (bits / 8);  // < 2^51: no overflow
    // Uncompressed pixels are all in the file, each page's in its own bytes;
    // Deflate packs at most 1032 bytes into one. This bounds what all pages
    // together allocate, whatever the file says (a hostile one could point
    // many pages at the same strip).
    const std::uint64_t bound = compression == 1 ? size_ : size_ * 1032;
    if (row_bytes > 0 && height > (bound - std::min(bound, pixel_bytes_)) / row_bytes) {
      damaged(std::to_string(width) + " x " + std::to_string(height) + " pixels need more bytes than the file " +
              (compression == 1 ? "has" : "can hold compressed") + page);
    }
    a.desc = ipc::TensorDesc::contiguous(dtype, shape);
    if (row_bytes == 0 || height == 0) return a;  // no pixels: read_frames says so
    pixel_bytes_ += a.desc.nbytes();
    if (const std::uint64_t memory = util::available_memory(); memory > 0 && pixel_bytes_ > memory) {
      throw Error(Errc::out_of_memory, "cannot read '" + path_ + "': its pixels (" +
                                           util::gib_string(static_cast<double>(pixel_bytes_)) +
                                           ") need more than the " + util::gib_string(static_cast<double>(memory)) +
                                           " of memory available; crop it or split it into tiles");
    }
    a.data.resize(a.desc.nbytes());

    const std::uint64_t rows_per_strip = std::min(scalar(dir, kRowsPerStrip, height), height);
    if (rows_per_strip == 0) damaged("RowsPerStrip is 0" + page);
    const std::uint64_t strips = (height + rows_per_strip - 1) / rows_per_strip;
    const auto offsets = values(dir, kStripOffsets);
    const auto counts = values(dir, kStripByteCounts);  // may be absent: uncompressed strips have a known size
    if (compression != 1 && counts.empty()) damaged("a compressed TIFF without StripByteCounts" + page);
    if (offsets.size() < strips) {
      damaged(std::to_string(strips) + " strips but " + std::to_string(offsets.size()) + " StripOffsets" + page);
    }
    if (!counts.empty() && counts.size() < strips) {
      damaged(std::to_string(strips) + " strips but " + std::to_string(counts.size()) + " StripByteCounts" + page);
    }
    for (std::uint64_t s = 0; s < strips; ++s) {
      const std::uint64_t rows = std::min(rows_per_strip, height - s * rows_per_strip);
      const std::uint64_t bytes = rows * row_bytes;
      const std::string strip = "strip " + std::to_string(s + 1) + page;
      std::byte* const into = a.data.data() + s * rows_per_strip * row_bytes;
      if (compression != 1) {
        if (counts[s] > size_) damaged(strip + " is larger than the file");
        std::vector<unsigned char> packed(counts[s]);
        read_at(offsets[s], packed.data(), packed.size(), strip);
        inflate_strip(packed, {into, bytes}, strip);
        continue;
      }
      if (!counts.empty() && counts[s] < bytes) {
        damaged(strip + " holds " + std::to_string(counts[s]) + " bytes, not " + std::to_string(bytes));
      }
      read_at(offsets[s], into, bytes, strip);
    }
    if (!little_) swap_samples(a.data, bits / 8);
    if (predictor == 2) {
      const std::uint64_t row_samples = width * samples;
      if (bits == 8) undo_differencing<std::uint8_t>(a.data, row_samples, samples);
      if (bits == 16) undo_differencing<std::uint16_t>(a.data, row_samples, samples);
      if (bits == 32) undo_differencing<std::uint32_t>(a.data, row_samples, samples);
    }
    // WhiteIsZero: 8-bit gray is inverted (every bit, signed too), as the
    // spec means it and as OpenCV (libtiff's RGBA interface) reads it; wider
    // samples are returned as stored, as OpenCV returns them, so that both
    // readers give the same pixels.
    if (white_is_zero && bits == 8) {
      for (std::byte& b : a.data) b = ~b;
    }
    return a;
  }

  static void swap_samples(std::vector<std::byte>& data, std::uint64_t size) {
    if (size == 1) return;
    for (std::size_t i = 0; i + size <= data.size(); i += size) std::reverse(&data[i], &data[i] + size);
  }

  std::string path_;
  RegularFile file_;
  std::uint64_t size_ = 0;
  std::uint64_t pixel_bytes_ = 0;  // of the pages read so far
  bool little_ = true;
};

}  // namespace

std::vector<Array> read_baseline_tiff(const std::string& path, std::size_t max_pages) {
  return TiffFile(path).read(max_pages);
}

}  // namespace cpipc::io::detail
