#include "cpipc/io/probe.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <set>

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/util/memory.hpp"
#include "npy_header.hpp"

namespace cpipc::io {

namespace {

using ipc::DType;
using ipc::DTypeCode;

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

std::uint64_t times(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kMax : r;
}

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw Error(Errc::invalid_argument, "cannot read '" + path + "': " + why);
}

// Reads integers of either byte order at offsets of the file.
class Bytes {
 public:
  explicit Bytes(const RegularFile& file) : file_(file) {}
  bool little = true;

  // n bytes at `at`, or false when the file ends before.
  bool read(std::uint64_t at, void* out, std::size_t n) const { return file_.read_at(at, out, n) == n; }
  [[nodiscard]] std::uint32_t u16(const unsigned char* b) const { return little ? b[0] | b[1] << 8 : b[1] | b[0] << 8; }
  [[nodiscard]] std::uint32_t u32(const unsigned char* b) const {
    return little
               ? std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 | std::uint32_t{b[2]} << 16 | std::uint32_t{b[3]} << 24
               : std::uint32_t{b[3]} | std::uint32_t{b[2]} << 8 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[0]} << 24;
  }
  [[nodiscard]] std::uint64_t u64(const unsigned char* b) const {
    const std::uint64_t lo = u32(little ? b : b + 4);
    const std::uint64_t hi = u32(little ? b + 4 : b);
    return hi << 32 | lo;
  }

 private:
  const RegularFile& file_;
};

// A classic TIFF's or a BigTIFF's directory layout.
struct TiffLayout {
  bool big = false;  // BigTIFF: 8-byte counts and offsets
  [[nodiscard]] std::size_t entry() const { return big ? 20 : 12; }
  [[nodiscard]] std::size_t count_size() const { return big ? 8 : 2; }
  [[nodiscard]] std::size_t inline_size() const { return big ? 8 : 4; }
};

// The first value of an integer field of a TIFF directory entry (`e`: its
// 12 or 20 bytes), wherever it is stored; `fallback` when unreadable.
std::uint64_t tiff_value(const Bytes& b, const TiffLayout& l, const unsigned char* e, std::uint64_t fallback) {
  const std::uint32_t type = b.u16(e + 2);
  const std::uint64_t count = l.big ? b.u64(e + 4) : b.u32(e + 4);
  const unsigned char* field = e + (l.big ? 12 : 8);
  const std::uint32_t size = type == 3 ? 2 : type == 4 ? 4 : type == 1 ? 1 : type == 16 ? 8 : 0;
  if (size == 0 || count == 0) return fallback;
  unsigned char v[8];
  if (count <= l.inline_size() / size) {
    std::memcpy(v, field, size);
  } else if (!b.read(l.big ? b.u64(field) : b.u32(field), v, size)) {
    return fallback;
  }
  return size == 1 ? v[0] : size == 2 ? b.u16(v) : size == 4 ? b.u32(v) : b.u64(v);
}

// One TIFF directory's page as the readers decode it: BitsPerSample under 8
// and palettes come out as bytes (palette: RGB).
ImagePage tiff_page(const Bytes& b, const TiffLayout& l, const std::vector<unsigned char>& entries) {
  std::uint64_t bits = 1, format = 1, photometric = 1;
  ImagePage p;
  for (std::size_t i = 0; i + l.entry() <= entries.size(); i += l.entry()) {
    const unsigned char* e = entries.data() + i;
    switch (b.u16(e)) {
      case 256:
        p.width = tiff_value(b, l, e, 0);
        break;
      case 257:
        p.height = tiff_value(b, l, e, 0);
        break;
      case 258:
        bits = tiff_value(b, l, e, 1);
        break;
      case 262:
        photometric = tiff_value(b, l, e, 1);
        break;
      case 277:
        p.channels = tiff_value(b, l, e, 1);
        break;
      case 339:
        format = tiff_value(b, l, e, 1);
        break;
      default:
        break;
    }
  }
  if (photometric == 3) p.channels = 3;
  const std::uint64_t item = std::clamp<std::uint64_t>((bits + 7) / 8, 1, 8);
  p.dtype = DType{format == 3   ? DTypeCode::float_
                  : format == 2 ? DTypeCode::int_
                                : DTypeCode::uint,
                  static_cast<std::uint8_t>(item * 8), 1};
  return p;
}

// Every directory of a classic TIFF or a BigTIFF. OpenCV stops silently at
// a directory cut off by truncation, so read_frames compares the pages it
// decoded with these.
void probe_tiff(const std::string& path, const Bytes& b, const unsigned char* head, ImageInfo& info) {
  const TiffLayout l{b.u16(head + 2) == 43};
  std::uint64_t first = b.u32(head + 4);
  if (l.big) {  // 8 (offset size), 0, then the first directory's 8-byte offset
    unsigned char h[8];
    if (b.u16(head + 4) != 8 || !b.read(8, h, 8)) refuse(path, "corrupt or truncated TIFF (BigTIFF header)");
    first = b.u64(h);
  }
  std::set<std::uint64_t> seen;  // a chain that comes back to a directory never ends
  for (std::uint64_t ifd = first; ifd != 0;) {
    const std::string number = std::to_string(info.pages.size() + 1);
    if (!seen.insert(ifd).second) refuse(path, "corrupt TIFF (directory " + number + " points back to an earlier one)");
    unsigned char count[8] = {};
    std::vector<unsigned char> entries;
    bool whole = info.pages.size() < 1'000'000 && b.read(ifd, count, l.count_size());
    const std::uint64_t n = l.big ? b.u64(count) : b.u16(count);
    whole = whole && n < 65536;
    if (whole) {
      entries.resize(l.entry() * n + l.inline_size());
      whole = b.read(ifd + l.count_size(), entries.data(), entries.size());
    }
    if (!whole) refuse(path, "corrupt or truncated TIFF (directory " + number + " is cut off)");
    const unsigned char* next = entries.data() + entries.size() - l.inline_size();
    ifd = l.big ? b.u64(next) : b.u32(next);
    entries.resize(entries.size() - l.inline_size());
    info.pages.push_back(tiff_page(b, l, entries));
  }
}

// IHDR, the first chunk: width, height, bit depth, colour type. Palette
// and gray+alpha images come out of OpenCV as 3 or 4 channels.
void probe_png(Bytes& b, ImageInfo& info) {
  unsigned char chunk[18];  // length, "IHDR", width, height, depth, colour type
  if (!b.read(8, chunk, sizeof chunk) || std::memcmp(chunk + 4, "IHDR", 4) != 0) return;
  b.little = false;
  ImagePage p;
  p.width = b.u32(chunk + 8);
  p.height = b.u32(chunk + 12);
  p.dtype = chunk[16] == 16 ? ipc::kUInt16 : ipc::kUInt8;
  const unsigned char colour = chunk[17];
  p.channels = colour == 2 || colour == 3 ? 3 : colour == 4 || colour == 6 ? 4 : 1;
  info.pages.push_back(p);
}

// The first SOFn marker segment within the first 1 MiB: precision, height,
// width, components. OpenCV returns 8-bit gray or BGR.
void probe_jpeg(Bytes& b, ImageInfo& info) {
  b.little = false;
  for (std::uint64_t at = 2; at < (1u << 20);) {
    unsigned char m[4];
    if (!b.read(at, m, 4) || m[0] != 0xff) return;
    if (m[1] == 0xff) {  // fill byte
      ++at;
      continue;
    }
    const unsigned char marker = m[1];
    const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (sof) {
      unsigned char f[6];
      if (!b.read(at + 4, f, 6)) return;
      ImagePage p;
      p.height = b.u16(f + 1);
      p.width = b.u16(f + 3);
      p.channels = f[5] == 1 ? 1 : 3;
      info.pages.push_back(p);
      return;
    }
    if (marker == 0xda || marker == 0xd9) return;  // the scan (or the end) before any frame header
    at += 2 + b.u16(m + 2);
  }
}

// BITMAPINFOHEADER: width, height (negative: top-down), bits per pixel.
void probe_bmp(Bytes& b, ImageInfo& info) {
  unsigned char h[16];
  if (!b.read(14, h, sizeof h)) return;
  const auto width = static_cast<std::int32_t>(b.u32(h + 4));
  const auto height = static_cast<std::int32_t>(b.u32(h + 8));
  const std::uint32_t bits = b.u16(h + 14);
  ImagePage p;
  p.width = static_cast<std::uint64_t>(width < 0 ? -std::int64_t{width} : width);
  p.height = static_cast<std::uint64_t>(height < 0 ? -std::int64_t{height} : height);
  p.channels = bits == 32 ? 4 : 3;
  info.pages.push_back(p);
}

void probe_npy(const RegularFile& file, ImageInfo& info) {
  const ipc::TensorDesc d = detail::read_npy_header(file).desc;
  ImagePage p;
  p.height = d.ndim > 0 ? static_cast<std::uint64_t>(d.shape[0]) : 1;
  p.width = d.ndim > 1 ? static_cast<std::uint64_t>(d.shape[1]) : 1;
  for (std::uint32_t i = 2; i < d.ndim; ++i) p.channels = times(p.channels, static_cast<std::uint64_t>(d.shape[i]));
  p.dtype = d.dtype;
  info.pages.push_back(p);
}

}  // namespace

std::uint64_t ImagePage::bytes() const noexcept {
  return times(times(times(height, width), channels), dtype.itemsize());
}

std::uint64_t ImageInfo::bytes() const noexcept {
  std::uint64_t total = 0;
  for (const ImagePage& p : pages) {
    if (__builtin_add_overflow(total, p.bytes(), &total)) return kMax;
  }
  return total;
}

ImageInfo probe_image(const std::string& path) {
  const RegularFile file = RegularFile::open(path);
  if (file.size() == 0) refuse(path, "the file is empty (0 bytes)");
  Bytes b(file);
  std::array<unsigned char, 8> head{};
  const std::size_t got = file.read_at(0, head.data(), head.size());
  const auto starts = [&](std::initializer_list<unsigned char> sig) {
    return got >= sig.size() && std::equal(sig.begin(), sig.end(), head.begin());
  };
  ImageInfo info;
  if (starts({0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a})) {
    info.format = "PNG";
    probe_png(b, info);
  } else if (starts({'I', 'I'}) || starts({'M', 'M'})) {
    b.little = head[0] == 'I';
    if (b.u16(head.data() + 2) != 42 && b.u16(head.data() + 2) != 43) {
      refuse(path, "not an image file (it has no PNG, TIFF, JPEG or BMP signature)");
    }
    if (got < 8) refuse(path, "corrupt or truncated TIFF (no header)");
    info.format = "TIFF";
    probe_tiff(path, b, head.data(), info);
  } else if (starts({0xff, 0xd8, 0xff})) {
    info.format = "JPEG";
    probe_jpeg(b, info);
  } else if (starts({'B', 'M'})) {
    info.format = "BMP";
    probe_bmp(b, info);
  } else if (starts({0x93, 'N', 'U', 'M', 'P', 'Y'})) {
    info.format = "NPY";
    probe_npy(file, info);
  } else {
    refuse(path, "not an image file (it has no PNG, TIFF, JPEG or BMP signature)");
  }
  return info;
}

void check_decoded_size(const std::string& path, std::uint64_t bytes) {
  const std::uint64_t memory = util::available_memory();
  if (memory == 0 || bytes <= memory) return;
  throw Error(Errc::out_of_memory, "cannot read '" + path + "': decoding it needs " +
                                       util::gib_string(static_cast<double>(bytes)) + ", " +
                                       util::gib_string(static_cast<double>(memory)) +
                                       " of memory available; crop it, split it into tiles or free memory");
}

}  // namespace cpipc::io
