// read_tiff and write_tiff (src/io/tiff_reader.cpp, tiff_writer.cpp): TIFFs
// made here with libtiff itself (each codec, tiles, BigTIFF, big-endian,
// planar), byte by byte (what libtiff will not write: 12-bit, complex,
// mixed bit depths), and the committed tifffile fixtures in tests/data/io.
#include <sys/stat.h>
#include <tiffio.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/probe.hpp"
#include "support/test_support.hpp"
#include "support/tiff_builder.hpp"

#include "../src/io/tiff_reader.hpp"
#include "../src/io/tiff_writer.hpp"

namespace {

using namespace cpipc;
using cpipc::test::TempDir;

const std::string kData = CPIPC_SOURCE_DIR "/tests/data/io/";

// A page to write with libtiff: its samples are bytes of a fixed pattern
// (any dtype: compared bit for bit), page `index` differing from the others.
struct Spec {
  std::uint32_t width = 37;
  std::uint32_t height = 21;
  std::uint16_t samples = 1;
  std::uint16_t bits = 16;
  std::uint16_t format = SAMPLEFORMAT_UINT;
  std::uint16_t compression = COMPRESSION_NONE;
  std::uint16_t predictor = 1;
  std::uint16_t photometric = PHOTOMETRIC_MINISBLACK;
  bool separate = false;
  bool tiled = false;  // 16 x 16 tiles, the last ones partial
  std::uint32_t rows_per_strip = 4;
  std::string description;  // on the first page only
};

std::vector<std::byte> pattern(const Spec& s, int index) {
  std::vector<std::byte> b(std::size_t{s.width} * s.height * s.samples * s.bits / 8);
  for (std::size_t i = 0; i < b.size(); ++i) {
    // Floats: keep exponents sane so the floating-point predictor round-trips
    // ordinary numbers (NaN payloads would too, but read less clearly).
    b[i] = static_cast<std::byte>((i * 7 + static_cast<std::size_t>(index) * 13) % 61 + 1);
  }
  return b;
}

// Writes `pages` pages of `s` to `path` with libtiff; returns their bytes in
// page-axes order ([H, W, S] contiguous, [S, H, W] separate).
std::vector<std::vector<std::byte>> write_libtiff(const std::string& path, const Spec& s, int pages = 1,
                                                  const char* mode = "w") {
  TIFF* t = TIFFOpen(path.c_str(), mode);
  EXPECT_NE(t, nullptr);
  std::vector<std::vector<std::byte>> out;
  for (int p = 0; p < pages; ++p) {
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, s.width);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, s.height);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, s.samples);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, s.bits);
    TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, s.format);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, s.photometric);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, s.separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_COMPRESSION, s.compression);
    if (s.predictor != 1) TIFFSetField(t, TIFFTAG_PREDICTOR, s.predictor);
    if (s.samples > 1 && s.photometric == PHOTOMETRIC_MINISBLACK) {
      std::vector<std::uint16_t> extra(s.samples - 1u, EXTRASAMPLE_UNSPECIFIED);
      TIFFSetField(t, TIFFTAG_EXTRASAMPLES, static_cast<std::uint16_t>(extra.size()), extra.data());
    }
    if (p == 0 && !s.description.empty()) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, s.description.c_str());
    const std::vector<std::byte> data = pattern(s, p);
    const std::size_t item = s.bits / 8u;
    const std::size_t pixel = item * (s.separate ? 1 : s.samples);
    const std::size_t row = pixel * s.width;
    const std::size_t plane = row * s.height;
    const int planes = s.separate ? s.samples : 1;
    if (s.tiled) {
      TIFFSetField(t, TIFFTAG_TILEWIDTH, 16u);
      TIFFSetField(t, TIFFTAG_TILELENGTH, 16u);
      std::vector<std::byte> tile(16 * 16 * pixel);
      for (int q = 0; q < planes; ++q) {
        for (std::uint32_t y = 0; y < s.height; y += 16) {
          for (std::uint32_t x = 0; x < s.width; x += 16) {
            std::fill(tile.begin(), tile.end(), std::byte{0});
            for (std::uint32_t r = 0; r < 16 && y + r < s.height; ++r) {
              std::memcpy(tile.data() + r * 16 * pixel, data.data() + q * plane + (y + r) * row + x * pixel,
                          pixel * std::min(16u, s.width - x));
            }
            EXPECT_GE(TIFFWriteEncodedTile(t, TIFFComputeTile(t, x, y, 0, static_cast<std::uint16_t>(q)), tile.data(),
                                           static_cast<tmsize_t>(tile.size())),
                      0);
          }
        }
      }
    } else {
      TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, s.rows_per_strip);
      const std::uint32_t strips = (s.height + s.rows_per_strip - 1) / s.rows_per_strip;
      for (int q = 0; q < planes; ++q) {
        for (std::uint32_t k = 0; k < strips; ++k) {
          const std::size_t rows = std::min(s.rows_per_strip, s.height - k * s.rows_per_strip);
          std::vector<std::byte> strip(
              data.begin() + static_cast<std::ptrdiff_t>(q * plane + k * s.rows_per_strip * row),
              data.begin() + static_cast<std::ptrdiff_t>(q * plane + k * s.rows_per_strip * row + rows * row));
          EXPECT_GE(TIFFWriteEncodedStrip(t, q * strips + k, strip.data(), static_cast<tmsize_t>(strip.size())), 0);
        }
      }
    }
    EXPECT_EQ(TIFFWriteDirectory(t), 1);
    out.push_back(data);
  }
  TIFFClose(t);
  return out;
}

std::vector<std::byte> concat(const std::vector<std::vector<std::byte>>& pages) {
  std::vector<std::byte> all;
  for (const auto& p : pages) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// read_tiff(path) refuses with `code`, one line naming the file and `what`.
void expect_refused(const std::string& path, const std::string& what, Errc code = Errc::invalid_argument) {
  try {
    (void)io::detail::read_tiff(path);
    ADD_FAILURE() << "read_tiff('" << path << "') did not throw; expected " << what;
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.code(), code) << m;
    EXPECT_NE(m.find("'" + path + "'"), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

class ReadTiff : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(ReadTiff, EveryCompressionThisLibtiffHasReadsExactly) {
  struct Case {
    std::uint16_t compression, predictor, bits, format;
  };
  const Case cases[] = {
      {COMPRESSION_NONE, 1, 16, SAMPLEFORMAT_UINT},
      {COMPRESSION_LZW, 2, 16, SAMPLEFORMAT_UINT},
      {COMPRESSION_DEFLATE, 1, 8, SAMPLEFORMAT_UINT},
      {COMPRESSION_ADOBE_DEFLATE, 2, 32, SAMPLEFORMAT_INT},
      {COMPRESSION_ADOBE_DEFLATE, 3, 32, SAMPLEFORMAT_IEEEFP},
      {COMPRESSION_ADOBE_DEFLATE, 3, 64, SAMPLEFORMAT_IEEEFP},
      {COMPRESSION_ADOBE_DEFLATE, 3, 16, SAMPLEFORMAT_IEEEFP},
      {COMPRESSION_ZSTD, 2, 16, SAMPLEFORMAT_UINT},
      {COMPRESSION_PACKBITS, 1, 8, SAMPLEFORMAT_INT},
      {COMPRESSION_LZMA, 1, 64, SAMPLEFORMAT_UINT},
  };
  for (const Case& c : cases) {
    if (TIFFIsCODECConfigured(c.compression) != 1) continue;
    Spec s;
    s.compression = c.compression;
    s.predictor = c.predictor;
    s.bits = c.bits;
    s.format = c.format;
    const std::string path = dir_.file("c" + std::to_string(c.compression) + "_" + std::to_string(c.bits) + ".tif");
    const auto pages = write_libtiff(path, s);
    const auto got = io::detail::read_tiff(path);
    ASSERT_EQ(got.size(), 1u) << path;
    EXPECT_EQ(got[0].axes, "YX") << path;
    EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{21, 37})) << path;
    EXPECT_EQ(got[0].dtype.bits, c.bits) << path;
    EXPECT_EQ(got[0].data, pages[0]) << path;
  }
}

TEST_F(ReadTiff, JpegYCbCrIsReadAsRgb) {
  if (TIFFIsCODECConfigured(COMPRESSION_JPEG) != 1) GTEST_SKIP() << "no JPEG codec";
  const std::string path = dir_.file("jpeg.tif");
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr);
  const std::uint32_t w = 32, h = 16;
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
  TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 16);
  std::vector<std::uint8_t> rgb(w * h * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = i % 3 == 0 ? 200 : i % 3 == 1 ? 100 : 50;  // flat colour
  ASSERT_GE(TIFFWriteEncodedStrip(t, 0, rgb.data(), static_cast<tmsize_t>(rgb.size())), 0);
  TIFFClose(t);
  const auto got = io::detail::read_tiff(path);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].axes, "YXS");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{16, 32, 3}));
  for (std::size_t i = 0; i < rgb.size(); ++i) {
    ASSERT_NEAR(static_cast<int>(got[0].data[i]), rgb[i], 4) << i;  // lossy, but RGB, not YCbCr
  }
}

TEST_F(ReadTiff, TilesPlanesBigTiffAndBigEndian) {
  Spec tiles;
  tiles.tiled = true;
  tiles.compression = COMPRESSION_ADOBE_DEFLATE;
  const auto tiled = write_libtiff(dir_.file("tiles.tif"), tiles, 2);
  auto got = io::detail::read_tiff(dir_.file("tiles.tif"));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].axes, "QYX");
  EXPECT_EQ(got[0].source, "");
  EXPECT_EQ(got[0].data, concat(tiled));

  Spec planar;
  planar.samples = 3;
  planar.separate = true;
  planar.photometric = PHOTOMETRIC_RGB;
  for (bool tile : {false, true}) {
    planar.tiled = tile;
    const auto pages = write_libtiff(dir_.file("planar.tif"), planar);
    got = io::detail::read_tiff(dir_.file("planar.tif"));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].axes, "SYX");
    EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{3, 21, 37}));
    EXPECT_EQ(got[0].data, pages[0]) << "tiled " << tile;
  }

  Spec chunky;
  chunky.samples = 5;  // more samples than RGBA
  chunky.bits = 8;
  const auto five = write_libtiff(dir_.file("five.tif"), chunky);
  got = io::detail::read_tiff(dir_.file("five.tif"));
  EXPECT_EQ(got.at(0).axes, "YXS");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{21, 37, 5}));
  EXPECT_EQ(got[0].data, five[0]);

  // Big-endian BigTIFF: the values come back in native order.
  for (const std::uint16_t bits : {16, 32, 64}) {
    Spec big;
    big.bits = bits;
    big.format = bits == 32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT;
    big.compression = COMPRESSION_ADOBE_DEFLATE;
    // No predictor here: libtiff 4.5 writing a big-endian file with one
    // swaps the differenced samples wrongly (tifffile's are read right).
    const std::string path = dir_.file("big.tif");
    write_libtiff(path, big, 3, "w8b");
    const auto native = write_libtiff(dir_.file("native.tif"), big, 3, "w");
    got = io::detail::read_tiff(path);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].axes, "QYX");
    EXPECT_EQ(got[0].data, concat(native)) << bits;
    const io::ImageInfo info = io::probe_image(path);
    ASSERT_EQ(info.pages.size(), 3u) << "BigTIFF pages are probed";
    EXPECT_EQ(info.pages[0].height, 21u);
    EXPECT_EQ(info.pages[0].width, 37u);
    EXPECT_EQ(info.pages[0].dtype.bits, bits);
  }
}

TEST_F(ReadTiff, PaletteAndMinIsWhiteKeepTheStoredValues) {
  Spec white;
  white.bits = 8;
  white.photometric = PHOTOMETRIC_MINISWHITE;
  const auto pages = write_libtiff(dir_.file("white.tif"), white);
  EXPECT_EQ(io::detail::read_tiff(dir_.file("white.tif")).at(0).data, pages[0]);

  const std::string path = dir_.file("palette.tif");
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 4u);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, 2u);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE);
  std::vector<std::uint16_t> map(256, 0);
  TIFFSetField(t, TIFFTAG_COLORMAP, map.data(), map.data(), map.data());
  std::uint8_t index[8] = {0, 1, 2, 3, 250, 251, 252, 253};
  ASSERT_GE(TIFFWriteEncodedStrip(t, 0, index, 8), 0);
  TIFFClose(t);
  const auto got = io::detail::read_tiff(path);
  EXPECT_EQ(got.at(0).axes, "YX");
  EXPECT_EQ(std::memcmp(got[0].data.data(), index, 8), 0);
}

TEST_F(ReadTiff, WhatCannotBeReadExactlyIsOneLine) {
  const auto page = [](std::uint32_t bits) {
    io::Array a;
    const std::int64_t shape[2] = {2, 8};
    a.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
    a.data.resize(16);
    test::TiffPage p(a);
    p.tags[258] = {3, 1, bits};
    return p;
  };
  write_bytes(dir_.file("bits1.tif"), test::tiff_file(false, {page(1)}));
  expect_refused(dir_.file("bits1.tif"), "1-bit samples");
  write_bytes(dir_.file("bits12.tif"), test::tiff_file(true, {page(12)}));
  expect_refused(dir_.file("bits12.tif"), "12-bit samples");
  auto complex = page(8);
  complex.tags[339] = {3, 1, SAMPLEFORMAT_COMPLEXIEEEFP};
  write_bytes(dir_.file("complex.tif"), test::tiff_file(false, {complex}));
  expect_refused(dir_.file("complex.tif"), "SampleFormat 6 (complex samples) is not supported");
  auto codec = page(8);
  codec.tags[259] = {3, 1, 34712};  // JPEG 2000: no codec in libtiff
  write_bytes(dir_.file("jp2k.tif"), test::tiff_file(false, {codec}));
  expect_refused(dir_.file("jp2k.tif"), "compression 34712");
  auto ycbcr = page(8);
  ycbcr.tags[262] = {3, 1, PHOTOMETRIC_YCBCR};
  ycbcr.tags[277] = {3, 1, 3};
  write_bytes(dir_.file("ycbcr.tif"), test::tiff_file(false, {ycbcr}));
  expect_refused(dir_.file("ycbcr.tif"), "subsampled YCbCr without JPEG");

  // Two samples of 8 and 16 bits: the BitsPerSample pair patched in place.
  io::Array two;
  const std::int64_t shape[3] = {2, 4, 2};
  two.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  two.data.resize(16);
  std::string bytes = test::tiff_file(false, {test::TiffPage(two)});
  const std::string entry("\x02\x01\x03\x00\x02\x00\x00\x00\x08\x00\x08\x00", 12);
  const std::size_t at = bytes.find(entry);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 10] = 16;
  write_bytes(dir_.file("mixed.tif"), bytes);
  expect_refused(dir_.file("mixed.tif"), "a different bit depth per sample is not supported");
}

TEST_F(ReadTiff, DamagedMissingAndSpecialFiles) {
  expect_refused(dir_.file("none.tif"), "no file", Errc::not_found);
  write_bytes(dir_.file("text.tif"), "this is not a TIFF at all");
  expect_refused(dir_.file("text.tif"), "corrupt or truncated TIFF");
  Spec s;
  s.compression = COMPRESSION_ADOBE_DEFLATE;
  s.rows_per_strip = 21;
  write_libtiff(dir_.file("whole.tif"), s);
  std::ifstream in(dir_.file("whole.tif"), std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), {});
  // libtiff writes the pixels before the directory: cut into them and the
  // directory points past the end.
  for (const std::size_t keep : {std::size_t{8}, std::size_t{100}, whole.size() / 2, whole.size() - 10}) {
    write_bytes(dir_.file("cut.tif"), whole.substr(0, keep));
    expect_refused(dir_.file("cut.tif"), "corrupt or truncated TIFF");
  }
  // Flipped bytes: a clean error or the right size, never a crash.
  for (std::size_t at = 8; at < whole.size(); at += 5) {
    std::string bad = whole;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    write_bytes(dir_.file("flip.tif"), bad);
    try {
      const auto got = io::detail::read_tiff(dir_.file("flip.tif"));
      for (const auto& g : got) {
        std::uint64_t n = g.dtype.itemsize();
        for (const auto e : g.shape) n *= static_cast<std::uint64_t>(e);
        EXPECT_EQ(g.data.size(), n);
      }
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
  // A header that claims 2^20 x 2^20 uint64 pixels (8 TiB) in a tiny file:
  // refused as damaged before anything is allocated (a file that holds that
  // much is refused as out of memory instead: io_files_test's big.tif).
  {
    io::Array tiny;
    const std::int64_t shape[2] = {1, 1};
    tiny.desc = ipc::TensorDesc::contiguous(ipc::DType{ipc::DTypeCode::uint, 64, 1}, shape);
    tiny.data.resize(8);
    test::TiffPage huge(tiny);
    huge.tags[256] = {4, 1, 1u << 20};
    huge.tags[257] = {4, 1, 1u << 20};
    huge.tags[278] = {4, 1, 1u << 20};  // one strip
    write_bytes(dir_.file("huge.tif"), test::tiff_file(false, {huge}));
    expect_refused(dir_.file("huge.tif"), "lies past the end of the file", Errc::invalid_argument);
  }
  // A FIFO with no writer: refused at once, not a read that waits forever.
  const std::string fifo = dir_.file("fifo.tif");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  expect_refused(fifo, "FIFO");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// libtiff's messages stay with their file: files read on several threads
// at once, damaged ones among them, print nothing and get their own errors.
TEST_F(ReadTiff, MessagesStayWithTheirFileAcrossThreads) {
  Spec s;
  s.compression = COMPRESSION_ADOBE_DEFLATE;
  const auto pages = write_libtiff(dir_.file("good.tif"), s, 2);
  std::ifstream in(dir_.file("good.tif"), std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), {});
  write_bytes(dir_.file("bad.tif"), whole.substr(0, whole.size() - 40));
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  std::atomic<int> good{0}, bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        try {
          const auto got = io::detail::read_tiff(dir_.file((i + t) % 2 ? "bad.tif" : "good.tif"));
          if (got.at(0).data == concat(pages)) ++good;
        } catch (const Error& e) {
          if (std::string(e.what()).find("bad.tif': corrupt or truncated TIFF") != std::string::npos) ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(good.load(), 40);
  EXPECT_EQ(bad.load(), 40);
}

TEST_F(ReadTiff, ImageJHyperstackAxes) {
  Spec s;
  s.description = "ImageJ=1.11a\nimages=6\nchannels=2\nslices=3\nhyperstack=true\nmode=grayscale\n";
  const auto pages = write_libtiff(dir_.file("ij.tif"), s, 6);
  auto got = io::detail::read_tiff(dir_.file("ij.tif"));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].axes, "ZCYX");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{3, 2, 21, 37}));
  EXPECT_EQ(got[0].source, "ImageJ");
  EXPECT_EQ(got[0].data, concat(pages));

  s.description = "ImageJ=1.11a\nimages=24\nchannels=2\nslices=3\nframes=4\nhyperstack=true\n";
  write_libtiff(dir_.file("ij5.tif"), s, 24);
  got = io::detail::read_tiff(dir_.file("ij5.tif"));
  EXPECT_EQ(got.at(0).axes, "TZCYX") << "five axes: StoredImage has its own shape";
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{4, 3, 2, 21, 37}));

  // RGB pages: ImageJ counts the samples as its channels.
  Spec rgb;
  rgb.samples = 3;
  rgb.bits = 8;
  rgb.photometric = PHOTOMETRIC_RGB;
  rgb.description = "ImageJ=1.11a\nimages=2\nchannels=3\nslices=2\n";
  write_libtiff(dir_.file("ijrgb.tif"), rgb, 2);
  got = io::detail::read_tiff(dir_.file("ijrgb.tif"));
  EXPECT_EQ(got.at(0).axes, "ZYXS");

  // Counts that do not match the pages: read as if there were no metadata.
  s.description = "ImageJ=1.11a\nimages=7\nchannels=7\n";
  write_libtiff(dir_.file("ijbad.tif"), s, 6);
  got = io::detail::read_tiff(dir_.file("ijbad.tif"));
  EXPECT_EQ(got.at(0).axes, "QYX");
  EXPECT_EQ(got[0].source, "");

  // ImageJ's layout past 4 GiB: one directory for many images.
  s.description = "ImageJ=1.11a\nimages=5\nslices=5\n";
  write_libtiff(dir_.file("ij4g.tif"), s, 1);
  expect_refused(dir_.file("ij4g.tif"), "an ImageJ stack of 5 images with one page directory");
}

TEST_F(ReadTiff, OmeXmlAxesOfTheFirstImage) {
  Spec s;
  s.description =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">"
      "<Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZCT\" Type=\"uint16\" SizeX=\"37\" "
      "SizeY=\"21\" SizeZ=\"3\" SizeC=\"2\" SizeT=\"1\"></Pixels></Image></OME>";
  const auto pages = write_libtiff(dir_.file("ome.tif"), s, 6);
  const auto got = io::detail::read_tiff(dir_.file("ome.tif"));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].axes, "CZYX");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{2, 3, 21, 37}));
  EXPECT_EQ(got[0].source, "OME");
  EXPECT_EQ(got[0].data, concat(pages));

  Spec rgb;
  rgb.samples = 3;
  rgb.bits = 8;
  rgb.photometric = PHOTOMETRIC_RGB;
  rgb.description =
      "<OME><Image ID=\"Image:0\"><Pixels DimensionOrder=\"XYCZT\" SizeC=\"3\" SizeZ=\"1\" SizeT=\"2\" "
      "SamplesPerPixel=\"3\"/></Image><Image ID=\"Image:1\"><Pixels DimensionOrder=\"XYZCT\" "
      "SizeZ=\"9\"/></Image></OME>";
  write_libtiff(dir_.file("omergb.tif"), rgb, 3);
  const auto two = io::detail::read_tiff(dir_.file("omergb.tif"));
  ASSERT_EQ(two.size(), 2u) << "the pages past the first Image are a series of their own";
  EXPECT_EQ(two[0].axes, "TYXS");
  EXPECT_EQ(two[1].axes, "YXS");
}

TEST_F(ReadTiff, TifffileShapedJson) {
  Spec s;
  s.description = "{\"shape\": [3, 21, 37], \"axes\": \"ZYX\"}";
  write_libtiff(dir_.file("zyx.tif"), s, 3);
  auto got = io::detail::read_tiff(dir_.file("zyx.tif"));
  EXPECT_EQ(got.at(0).axes, "ZYX");
  EXPECT_EQ(got[0].source, "tifffile");

  // tifffile writes a [21, 37, 2] array as 21 pages of 37 x 2 pixels: the
  // shape wins, and no letter is trusted.
  Spec narrow;
  narrow.height = 37;
  narrow.width = 2;
  narrow.description = "{\"shape\": [21, 37, 2]}";
  const auto pages = write_libtiff(dir_.file("narrow.tif"), narrow, 21);
  got = io::detail::read_tiff(dir_.file("narrow.tif"));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].axes, "QQQ");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{21, 37, 2}));
  EXPECT_EQ(got[0].data, concat(pages));

  // The committed fixtures (tools/io/make_tiff_fixtures.py, tifffile).
  got = io::detail::read_tiff(kData + "zlib_f32_predictor.tif");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{8, 8}));
  const auto* f = reinterpret_cast<const float*>(got[0].data.data());
  for (int i = 0; i < 64; ++i) EXPECT_FLOAT_EQ(f[i], static_cast<float>(i) / 63.0f) << i;
  got = io::detail::read_tiff(kData + "cellpose_masks_u32.tif");
  const auto* m = reinterpret_cast<const std::uint32_t*>(got.at(0).data.data());
  for (std::size_t i = 0; i < 40 * 48; ++i) ASSERT_EQ(m[i], i % 5 ? 70000 + 7 * i : 0u) << i;
  got = io::detail::read_tiff(kData + "zlib_u16_stack.tif");
  EXPECT_EQ(got.at(0).shape, (std::vector<std::int64_t>{2, 24, 30}));
  const auto* u = reinterpret_cast<const std::uint16_t*>(got[0].data.data());
  for (std::size_t i = 0; i < 2 * 24 * 30; ++i) ASSERT_EQ(u[i], 1000 * (i / 720) + 10 * (i % 720 / 30) + i % 30) << i;
  got = io::detail::read_tiff(kData + "zlib_rgb8_predictor.tif");
  EXPECT_EQ(got.at(0).shape, (std::vector<std::int64_t>{20, 24, 3}));
  for (std::size_t i = 0; i < got[0].data.size(); ++i) ASSERT_EQ(static_cast<int>(got[0].data[i]), i % 251) << i;
  got = io::detail::read_tiff(kData + "stack3.tif");
  EXPECT_EQ(got.at(0).shape, (std::vector<std::int64_t>{3, 6, 5}));
}

TEST_F(ReadTiff, PagesOfOtherShapesStartAnotherSeries) {
  Spec a, b;
  b.width = 5;
  const std::string path = dir_.file("runs.tif");
  write_libtiff(path, a, 2);
  {  // then one page of b, appended
    TIFF* w = TIFFOpen(path.c_str(), "a");
    ASSERT_NE(w, nullptr);
    auto data = pattern(b, 0);
    TIFFSetField(w, TIFFTAG_IMAGEWIDTH, b.width);
    TIFFSetField(w, TIFFTAG_IMAGELENGTH, b.height);
    TIFFSetField(w, TIFFTAG_BITSPERSAMPLE, b.bits);
    TIFFSetField(w, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(w, TIFFTAG_ROWSPERSTRIP, b.height);
    TIFFSetField(w, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    ASSERT_GE(TIFFWriteEncodedStrip(w, 0, data.data(), static_cast<tmsize_t>(data.size())), 0);
    TIFFClose(w);
  }
  const auto got = io::detail::read_tiff(path);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].axes, "QYX");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{2, 21, 37}));
  EXPECT_EQ(got[1].axes, "YX");
  EXPECT_EQ(got[1].shape, (std::vector<std::int64_t>{21, 5}));
}

// A reduced-resolution page (SubfileType 1: a thumbnail, as Zeiss LSM
// files keep after every page) is not part of the image, as in tifffile.
TEST_F(ReadTiff, ThumbnailsBetweenPagesAreLeftOut) {
  const std::string path = dir_.file("lsm_like.tif");
  TIFF* w = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(w, nullptr);
  std::vector<std::vector<std::byte>> full;
  for (int p = 0; p < 4; ++p) {
    const bool thumb = p % 2 == 1;
    const std::uint32_t width = thumb ? 8 : 37, height = thumb ? 4 : 21;
    TIFFSetField(w, TIFFTAG_SUBFILETYPE, thumb ? FILETYPE_REDUCEDIMAGE : 0u);
    TIFFSetField(w, TIFFTAG_IMAGEWIDTH, width);
    TIFFSetField(w, TIFFTAG_IMAGELENGTH, height);
    TIFFSetField(w, TIFFTAG_BITSPERSAMPLE, thumb ? 8 : 16);
    TIFFSetField(w, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(w, TIFFTAG_ROWSPERSTRIP, height);
    TIFFSetField(w, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    Spec s;
    s.width = width;
    s.height = height;
    s.bits = thumb ? 8 : 16;
    const std::vector<std::byte> data = pattern(s, p);
    if (!thumb) full.push_back(data);
    ASSERT_GE(TIFFWriteEncodedStrip(w, 0, const_cast<std::byte*>(data.data()), static_cast<tmsize_t>(data.size())), 0);
    ASSERT_EQ(TIFFWriteDirectory(w), 1);
  }
  TIFFClose(w);
  const auto got = io::detail::read_tiff(path);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].axes, "QYX");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{2, 21, 37}));
  std::vector<std::byte> both = full[0];
  both.insert(both.end(), full[1].begin(), full[1].end());
  EXPECT_TRUE(got[0].data == both);
}

// ---- write_tiff ----

template <class T>
io::Array ramp(ipc::DType dtype, std::vector<std::int64_t> shape, const std::function<T(std::size_t)>& value) {
  io::Array a;
  a.desc = ipc::TensorDesc::contiguous(dtype, shape);
  a.data.resize(a.desc.nbytes());
  for (std::size_t i = 0; i < static_cast<std::size_t>(a.desc.numel()); ++i) {
    const T v = value(i);
    std::memcpy(a.data.data() + i * sizeof(T), &v, sizeof(T));
  }
  return a;
}

class WriteTiff : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(WriteTiff, RoundTripsEveryDtypeWithItsAxes) {
  const std::string path = dir_.file("out.tif");
  // uint32 labels past 65 535: one page, no ImageJ (it has no uint32).
  const auto labels =
      ramp<std::uint32_t>(ipc::kUInt32, {30, 41}, [](std::size_t i) { return static_cast<std::uint32_t>(i * 4099); });
  io::detail::write_tiff(path, labels.view(), "YX");
  auto got = io::detail::read_tiff(path);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].axes, "YX");
  EXPECT_EQ(got[0].dtype, ipc::kUInt32);
  EXPECT_EQ(got[0].data, labels.data);

  // A uint16 stack: ImageJ's slices.
  const auto stack = ramp<std::uint16_t>(ipc::kUInt16, {4, 30, 41}, [](std::size_t i) { return i * 13 % 65521; });
  io::detail::write_tiff(path, stack.view(), "ZYX");
  got = io::detail::read_tiff(path);
  EXPECT_EQ(got.at(0).axes, "ZYX");
  EXPECT_EQ(got[0].source, "ImageJ");
  EXPECT_EQ(got[0].data, stack.data);

  // Channels last: one page per (z, c), read back channels first.
  const auto zyxc = ramp<float>(ipc::kFloat32, {2, 5, 6, 3}, [](std::size_t i) { return i * 0.5f; });
  io::detail::write_tiff(path, zyxc.view(), "ZYXC");
  got = io::detail::read_tiff(path);
  EXPECT_EQ(got.at(0).axes, "ZCYX");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{2, 3, 5, 6}));
  const auto* g = reinterpret_cast<const float*>(got[0].data.data());
  for (int z = 0; z < 2; ++z) {
    for (int c = 0; c < 3; ++c) {
      for (int yx = 0; yx < 30; ++yx) ASSERT_EQ(g[(z * 3 + c) * 30 + yx], ((z * 30 + yx) * 3 + c) * 0.5f);
    }
  }

  // Dtypes ImageJ lacks keep their axes through tifffile's description.
  const auto i32 = ramp<std::int32_t>(ipc::kInt32, {3, 7, 9}, [](std::size_t i) { return -70000 * int(i); });
  io::detail::write_tiff(path, i32.view(), "ZYX");
  got = io::detail::read_tiff(path);
  EXPECT_EQ(got.at(0).axes, "ZYX");
  EXPECT_EQ(got[0].source, "tifffile");
  EXPECT_EQ(got[0].data, i32.data);
  const ipc::DType f16{ipc::DTypeCode::float_, 16, 1}, f64{ipc::DTypeCode::float_, 64, 1},
      i8{ipc::DTypeCode::int_, 8, 1}, u64{ipc::DTypeCode::uint, 64, 1};
  for (const ipc::DType d : {f16, f64, i8, u64}) {
    io::Array a;
    const std::int64_t shape[2] = {6, 7};
    a.desc = ipc::TensorDesc::contiguous(d, shape);
    a.data.resize(a.desc.nbytes());
    for (std::size_t i = 0; i < a.data.size(); ++i) a.data[i] = static_cast<std::byte>(i * 29 % 61);
    io::detail::write_tiff(path, a.view(), "YX");
    got = io::detail::read_tiff(path);
    EXPECT_EQ(got.at(0).dtype, d) << ipc::to_string(d);
    EXPECT_EQ(got[0].data, a.data) << ipc::to_string(d);
  }

  // A strided view (every other column) is written as its values.
  ipc::HostView every_other = stack.view();
  every_other.desc.shape = {30, 20, 0, 0};
  every_other.desc.ndim = 2;
  every_other.desc.strides = {41, 2, 0, 0};
  io::detail::write_tiff(path, every_other, "YX");
  got = io::detail::read_tiff(path);
  const auto* s16 = reinterpret_cast<const std::uint16_t*>(got.at(0).data.data());
  const auto* src = stack.view().as<std::uint16_t>();
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 20; ++x) ASSERT_EQ(s16[y * 20 + x], src[y * 41 + 2 * x]);
  }
}

TEST_F(WriteTiff, RefusesWhatTiffCannotSayAndKeepsWriteArrayCallers) {
  const std::string path = dir_.file("out.tif");
  io::Array b;
  const std::int64_t shape[2] = {2, 2};
  b.desc = ipc::TensorDesc::contiguous(ipc::DType{ipc::DTypeCode::bool_, 8, 1}, shape);
  b.data = {std::byte{0}, std::byte{1}, std::byte{1}, std::byte{0}};
  // bool (numpy's: one byte, 0 or 1) is written as the same uint8 bytes
  io::detail::write_tiff(path, b.view(), "YX");
  EXPECT_EQ(io::detail::read_tiff(path).at(0).dtype, ipc::kUInt8);
  EXPECT_EQ(io::detail::read_tiff(path).at(0).data, b.data);
  try {  // axes that do not fit the array
    io::detail::write_tiff(path, b.view(), "ZYX");
    ADD_FAILURE() << "written";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
  // write_array: uint32 labels narrow to uint16 where they fit, else stay.
  auto labels = ramp<std::uint32_t>(ipc::kUInt32, {5, 6}, [](std::size_t i) { return i; });
  io::write_array(path, labels.view());
  EXPECT_EQ(io::detail::read_tiff(path).at(0).dtype, ipc::kUInt16);
  labels = ramp<std::uint32_t>(ipc::kUInt32, {5, 6}, [](std::size_t i) { return 65536 + i; });
  io::write_array(path, labels.view());
  auto got = io::detail::read_tiff(path);
  EXPECT_EQ(got.at(0).dtype, ipc::kUInt32);
  EXPECT_EQ(got[0].data, labels.data);
  io::detail::write_uint32_tiff(path, {labels.view().as<std::uint32_t>(), 30}, 5, 6);
  EXPECT_EQ(io::detail::read_tiff(path).at(0).data, labels.data);
  // [H, W, C] through write_array: one page per channel.
  const auto rgb = ramp<std::uint8_t>(ipc::kUInt8, {4, 5, 3}, [](std::size_t i) { return i; });
  io::write_array(path, rgb.view());
  got = io::detail::read_tiff(path);
  EXPECT_EQ(got.at(0).axes, "CYX");
  EXPECT_EQ(got[0].shape, (std::vector<std::int64_t>{3, 4, 5}));
}

}  // namespace
