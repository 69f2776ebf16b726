#include "png_stored.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/io/labels.hpp"

namespace cpipc::io::detail {

namespace {

using ipc::DTypeCode;

static_assert(std::endian::native == std::endian::little, "16-bit samples are swapped to big-endian below");

// CRC-32 of PNG chunks (ISO 3309, reflected polynomial 0xedb88320).
constexpr std::array<std::uint32_t, 256> kCrcTable = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t[n] = c;
  }
  return t;
}();

std::uint32_t crc32(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = kCrcTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void put_be32(std::vector<unsigned char>& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<unsigned char>(v >> shift));
}

class PngFile {
 public:
  explicit PngFile(const std::string& path) : out_(path) {
    static constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    out_.write(reinterpret_cast<const char*>(kSignature), sizeof kSignature);
  }

  void chunk(const char (&type)[5], const std::vector<unsigned char>& data) {
    std::vector<unsigned char> head;
    put_be32(head, static_cast<std::uint32_t>(data.size()));
    head.insert(head.end(), type, type + 4);
    const std::uint32_t crc = crc32(crc32(0, head.data() + 4, 4), data.data(), data.size());
    std::vector<unsigned char> tail;
    put_be32(tail, crc);
    write(head);
    write(data);
    write(tail);
  }

  void close() { out_.close(); }

 private:
  void write(const std::vector<unsigned char>& b) { out_.write(b.data(), b.size()); }

  OutputFile out_;
};

// The zlib stream (RFC 1950) of stored deflate blocks (RFC 1951, 3.2.4) of
// `total` bytes, written to IDAT chunks of up to 1 MiB as it fills.
class StoredZlib {
 public:
  StoredZlib(PngFile& png, std::uint64_t total) : png_(png), left_(total) {
    buffer_ = {0x78, 0x01};  // CM 8 (deflate), 32 KiB window; FLEVEL 0; (0x7801 % 31) == 0
  }

  void put(const unsigned char* p, std::size_t n) {
    adler(p, n);
    while (n > 0) {
      if (block_left_ == 0) start_block();
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, block_left_));
      buffer_.insert(buffer_.end(), p, p + take);
      p += take;
      n -= take;
      block_left_ -= take;
      left_ -= take;
      if (buffer_.size() >= kChunk) flush();
    }
  }

  void finish() {
    put_be32(buffer_, b_ << 16 | a_);
    flush();
  }

 private:
  static constexpr std::size_t kChunk = 1 << 20;

  // LEN and its one's complement NLEN, little-endian; BFINAL on the last.
  void start_block() {
    const auto len = static_cast<std::uint16_t>(std::min<std::uint64_t>(left_, 65535));
    const auto nlen = static_cast<std::uint16_t>(~len);
    buffer_.push_back(len == left_ ? 1 : 0);  // BFINAL, BTYPE 00 (stored)
    buffer_.insert(buffer_.end(), {static_cast<unsigned char>(len), static_cast<unsigned char>(len >> 8),
                                   static_cast<unsigned char>(nlen), static_cast<unsigned char>(nlen >> 8)});
    block_left_ = len;
  }

  // Adler-32 of the uncompressed data, reduced every 5552 bytes (the most
  // that cannot overflow 32 bits).
  void adler(const unsigned char* p, std::size_t n) {
    while (n > 0) {
      const std::size_t k = std::min<std::size_t>(n, 5552);
      for (std::size_t i = 0; i < k; ++i) {
        a_ += p[i];
        b_ += a_;
      }
      a_ %= 65521;
      b_ %= 65521;
      p += k;
      n -= k;
    }
  }

  void flush() {
    png_.chunk("IDAT", buffer_);
    buffer_.clear();
  }

  PngFile& png_;
  std::uint64_t left_;
  std::uint64_t block_left_ = 0;
  std::uint32_t a_ = 1, b_ = 0;
  std::vector<unsigned char> buffer_;
};

}  // namespace

void write_png_stored(const std::string& path, const ipc::HostView& view) {
  const auto& d = view.desc;
  const auto refuse = [&](const std::string& why) {
    throw Error(Errc::invalid_argument, "cannot write " + d.to_string() + " to '" + path + "': " + why);
  };
  const bool gray = d.ndim == 2 || (d.ndim == 3 && d.shape[2] == 1);
  const bool colour = d.ndim == 3 && (d.shape[2] == 3 || d.shape[2] == 4);
  if (!gray && !colour) refuse("images are [H, W] or [H, W, 1|3|4]; save as .npy or .bin");
  if (!d.is_contiguous() || (view.data == nullptr && d.numel() > 0)) refuse("the view is not C-contiguous");
  if (d.numel() == 0) refuse("a PNG has at least one pixel; save as .npy");
  const auto most = std::numeric_limits<std::int32_t>::max();  // PNG: width and height < 2^31
  if (d.shape[0] > most || d.shape[1] > most) refuse("too large for a PNG; save as .npy");

  ipc::HostView v = view;
  std::optional<Array> narrowed;
  const bool byte = d.dtype == ipc::kUInt8 || d.dtype == ipc::DType{DTypeCode::bool_, 8, 1};
  if (!byte && d.dtype != ipc::kUInt16) {
    if (gray) narrowed = labels_as_uint16(view);
    if (!narrowed) refuse("a PNG holds 8- or 16-bit unsigned integers; save as .npy");
    v = narrowed->view();
  }
  const std::uint32_t height = static_cast<std::uint32_t>(d.shape[0]);
  const std::uint32_t width = static_cast<std::uint32_t>(d.shape[1]);
  const std::uint32_t channels = d.ndim == 3 ? static_cast<std::uint32_t>(d.shape[2]) : 1;
  const std::size_t sample = v.desc.dtype.itemsize();
  const std::size_t row_bytes = std::size_t{width} * channels * sample;

  PngFile png(path);
  std::vector<unsigned char> ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.push_back(static_cast<unsigned char>(8 * sample));     // bit depth
  ihdr.push_back(channels == 1 ? 0 : channels == 3 ? 2 : 6);  // gray, RGB, RGBA
  ihdr.insert(ihdr.end(), {0, 0, 0});                         // deflate, filter 0, no interlace
  png.chunk("IHDR", ihdr);

  // Each scanline: filter type 0 (None), then the samples, big-endian.
  StoredZlib zlib(png, std::uint64_t{height} * (1 + row_bytes));
  std::vector<unsigned char> line(1 + row_bytes);
  const auto* pixels = reinterpret_cast<const unsigned char*>(v.data);
  for (std::uint32_t y = 0; y < height; ++y) {
    const unsigned char* row = pixels + std::size_t{y} * row_bytes;
    if (sample == 1) {
      std::memcpy(line.data() + 1, row, row_bytes);
    } else {
      for (std::size_t i = 0; i < row_bytes; i += 2) {
        line[1 + i] = row[i + 1];
        line[2 + i] = row[i];
      }
    }
    zlib.put(line.data(), line.size());
  }
  zlib.finish();
  png.chunk("IEND", {});
  png.close();
}

}  // namespace cpipc::io::detail
