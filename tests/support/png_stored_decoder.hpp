// A strict decoder, from the PNG (ISO 15948), zlib (RFC 1950) and deflate
// (RFC 1951) specs, of the one kind of PNG cpipc writes without OpenCV:
// image data in stored deflate blocks, filter type 0 on every row. It checks
// every structural rule on the way, so that the writer is tested on a
// machine with no PNG library at all. CRC-32 and Adler-32 are computed bit
// by bit here, independently of the writer's tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace cpipc::test {

struct StoredPng {
  std::uint32_t width = 0, height = 0;
  int bit_depth = 0, colour_type = 0;
  std::vector<unsigned char> samples;  // the rows without their filter bytes (16-bit: big-endian)
  int idat_chunks = 0;
  int deflate_blocks = 0;
};

inline std::uint32_t png_crc32_bitwise(const unsigned char* p, std::size_t n) {
  std::uint32_t c = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
  }
  return ~c;
}

// Throws std::runtime_error naming the first rule the file breaks.
inline StoredPng decode_stored_png(const std::vector<std::byte>& file) {
  const auto* f = reinterpret_cast<const unsigned char*>(file.data());
  const std::size_t size = file.size();
  const auto fail = [](const std::string& why) { throw std::runtime_error("bad stored PNG: " + why); };
  const auto be32 = [](const unsigned char* p) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
  };
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (size < 8 || std::memcmp(f, signature, 8) != 0) fail("no PNG signature");

  StoredPng png;
  std::vector<unsigned char> zlib;
  std::vector<std::string> order;
  for (std::size_t at = 8; at < size;) {
    if (size - at < 12) fail("a chunk is cut off");
    const std::uint32_t length = be32(f + at);
    if (length > size - at - 12) fail("a chunk's length runs past the end");
    const std::string type(reinterpret_cast<const char*>(f + at + 4), 4);
    const unsigned char* data = f + at + 8;
    if (png_crc32_bitwise(f + at + 4, 4 + length) != be32(data + length)) fail("chunk " + type + ": CRC mismatch");
    if (order.empty() && type != "IHDR") fail("IHDR is not first");
    if (!order.empty() && order.back() == "IEND") fail("a chunk after IEND");
    if (type == "IHDR") {
      if (length != 13) fail("IHDR is not 13 bytes");
      png.width = be32(data);
      png.height = be32(data + 4);
      png.bit_depth = data[8];
      png.colour_type = data[9];
      if (data[10] != 0 || data[11] != 0 || data[12] != 0) fail("compression, filter or interlace method not 0");
    } else if (type == "IDAT") {
      if (!order.empty() && order.back() != "IDAT" && png.idat_chunks > 0) fail("IDAT chunks are not consecutive");
      zlib.insert(zlib.end(), data, data + length);
      ++png.idat_chunks;
    } else if (type == "IEND") {
      if (length != 0) fail("IEND has data");
    }
    order.push_back(type);
    at += 12 + length;
  }
  if (order.empty() || order.back() != "IEND") fail("no IEND at the end");
  if (png.idat_chunks == 0) fail("no IDAT");

  // zlib: CMF (CM 8, CINFO <= 7), FLG (no dictionary, FCHECK), blocks, Adler-32.
  if (zlib.size() < 6) fail("zlib stream too short");
  if ((zlib[0] & 0x0f) != 8 || (zlib[0] >> 4) > 7) fail("zlib CMF is not deflate");
  if ((zlib[0] * 256 + zlib[1]) % 31 != 0) fail("zlib FCHECK");
  if (zlib[1] & 0x20) fail("zlib preset dictionary");
  std::vector<unsigned char> raw;
  std::size_t at = 2;
  for (bool final = false; !final;) {
    if (zlib.size() - at < 5) fail("a deflate block header is cut off");
    const unsigned char header = zlib[at];
    if ((header >> 1 & 3) != 0) fail("a deflate block is not stored (BTYPE " + std::to_string(header >> 1 & 3) + ")");
    if (header >> 3) fail("bits after BFINAL/BTYPE in a stored block header are not 0");
    final = header & 1;
    const unsigned len = zlib[at + 1] | zlib[at + 2] << 8;
    const unsigned nlen = zlib[at + 3] | zlib[at + 4] << 8;
    if ((len ^ 0xffff) != nlen) fail("LEN and NLEN do not match");
    at += 5;
    if (zlib.size() - at < len) fail("a stored block is cut off");
    raw.insert(raw.end(), zlib.begin() + static_cast<std::ptrdiff_t>(at),
               zlib.begin() + static_cast<std::ptrdiff_t>(at + len));
    at += len;
    ++png.deflate_blocks;
  }
  if (zlib.size() - at != 4) fail("not exactly the Adler-32 after the final block");
  std::uint32_t a = 1, b = 0;
  for (const unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  if ((b << 16 | a) != be32(zlib.data() + at)) fail("Adler-32 mismatch");

  int channels = 0;
  switch (png.colour_type) {
    case 0:
      channels = 1;
      break;
    case 2:
      channels = 3;
      break;
    case 6:
      channels = 4;
      break;
    default:
      fail("colour type " + std::to_string(png.colour_type));
  }
  if (png.bit_depth != 8 && png.bit_depth != 16) fail("bit depth " + std::to_string(png.bit_depth));
  const std::size_t row = std::size_t{png.width} * channels * (png.bit_depth / 8);
  if (raw.size() != png.height * (row + 1)) fail("the data is not height x (1 + row bytes)");
  for (std::uint32_t y = 0; y < png.height; ++y) {
    const unsigned char* line = raw.data() + y * (row + 1);
    if (line[0] != 0) fail("row " + std::to_string(y) + " has filter type " + std::to_string(line[0]));
    png.samples.insert(png.samples.end(), line + 1, line + 1 + row);
  }
  return png;
}

}  // namespace cpipc::test
