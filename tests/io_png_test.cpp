// PNG through libpng (src/io/png_codec.cpp), the same in every build: round
// trips of every kind cpipc writes, stored values of what only other programs
// write (1- and 4-bit gray, palettes; made here with libpng), OpenCV as the
// oracle where the build has it, and one-line errors for bad files.
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "support/test_support.hpp"

#if CPIPC_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#endif

// The codec under test is private to cpipc_io.
#include "../src/io/png_codec.hpp"

namespace io = cpipc::io;
namespace ipc = cpipc::ipc;
namespace fs = std::filesystem;
using cpipc::Errc;
using cpipc::Error;
using cpipc::test::read_file_bytes;
using cpipc::test::TempDir;

namespace {

template <class T>
io::Array make(ipc::DType dtype, std::vector<std::int64_t> shape, const std::function<T(std::size_t)>& value) {
  io::Array a;
  a.desc = ipc::TensorDesc::contiguous(dtype, shape);
  a.data.resize(a.desc.nbytes());
  for (std::size_t i = 0, n = static_cast<std::size_t>(a.desc.numel()); i < n; ++i) {
    const T v = value(i);
    std::memcpy(a.data.data() + i * sizeof(T), &v, sizeof(T));
  }
  return a;
}

std::uint32_t noise(std::size_t i, std::uint32_t seed) {
  std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u + seed * 40503u + 1;
  x ^= x >> 15;
  x *= 2246822519u;
  return x ^ (x >> 13);
}

io::Array u8(std::vector<std::int64_t> shape, std::uint32_t seed) {
  return make<std::uint8_t>(ipc::kUInt8, shape, [&](std::size_t i) { return noise(i, seed); });
}
io::Array u16(std::vector<std::int64_t> shape, std::uint32_t seed) {
  return make<std::uint16_t>(ipc::kUInt16, shape, [&](std::size_t i) { return noise(i, seed); });
}

// A PNG chunk's CRC-32 (ISO 3309), bit by bit.
std::uint32_t crc32(const unsigned char* p, std::size_t n) {
  std::uint32_t c = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
  }
  return ~c;
}

void write_bytes(const std::string& path, const void* data, std::size_t n) {
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

void write_png(const std::string& path, const io::Array& a) {
  const std::vector<unsigned char> bytes = io::detail::encode_png(a.view());
  write_bytes(path, bytes.data(), bytes.size());
}

// A PNG that cpipc never writes, made with libpng directly: `rows` are the
// packed rows as stored (big-endian 16-bit samples, 1-bit pixels packed
// eight to a byte, first pixel in the high bits).
struct RawPng {
  png_uint_32 width = 0, height = 0;
  int depth = 8, colour = PNG_COLOR_TYPE_GRAY;
  int interlace = PNG_INTERLACE_NONE;
  std::vector<std::vector<unsigned char>> rows;
  std::vector<png_color> palette;
  std::vector<png_byte> alphas;  // tRNS, for a palette
};

void libpng_error(png_structp png, png_const_charp message) {
  ADD_FAILURE() << "libpng: " << message;
  png_longjmp(png, 1);
}

void write_raw_png(const std::string& path, const RawPng& raw) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, libpng_error, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows;
  for (const auto& r : raw.rows) rows.push_back(const_cast<png_bytep>(r.data()));
  if (setjmp(png_jmpbuf(png)) == 0) {
    png_init_io(png, f);
    png_set_IHDR(png, info, raw.width, raw.height, raw.depth, raw.colour, raw.interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (!raw.palette.empty()) png_set_PLTE(png, info, raw.palette.data(), static_cast<int>(raw.palette.size()));
    if (!raw.alphas.empty()) {
      png_set_tRNS(png, info, raw.alphas.data(), static_cast<int>(raw.alphas.size()), nullptr);
    }
    png_write_info(png, info);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
  }
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

// `what` fails with `code`, one line naming `path` and containing `text`.
void expect_error(const std::function<void()>& what, Errc code, const std::string& path, const std::string& text) {
  try {
    what();
    ADD_FAILURE() << "no error; expected " << text;
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.code(), code) << m;
    EXPECT_NE(m.find("'" + path + "'"), std::string::npos) << m;
    EXPECT_NE(m.find(text), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

void expect_same(const io::Array& got, const io::Array& want) {
  EXPECT_EQ(got.desc.to_string(), want.desc.to_string());
  EXPECT_TRUE(got.data == want.data);
}

class Png : public ::testing::Test {
 protected:
  TempDir dir_;
};

// ---- round trips ----

TEST_F(Png, EveryKindWrittenIsReadBackExactly) {
  const std::vector<std::pair<std::string, io::Array>> images = {
      {"gray8", u8({7, 5}, 1)},          {"gray16", u16({7, 5}, 2)},
      {"gray_alpha8", u8({6, 4, 2}, 3)}, {"gray_alpha16", u16({6, 4, 2}, 4)},
      {"rgb8", u8({5, 9, 3}, 5)},        {"rgb16", u16({5, 9, 3}, 6)},
      {"rgba8", u8({3, 8, 4}, 7)},       {"rgba16", u16({3, 8, 4}, 8)},
      {"one_pixel", u8({1, 1}, 9)},      {"tall16", u16({300, 1}, 10)},
      {"wide8", u8({1, 300}, 11)},
  };
  for (const auto& [name, image] : images) {
    SCOPED_TRACE(name);
    const std::string path = dir_.file(name + ".png");
    io::write_array(path, image.view());
    expect_same(io::detail::read_png(path), image);
  }
}

TEST_F(Png, OneChannelAndBoolAreGray8AndWideLabelsThatFitAreUint16) {
  const io::Array one = u8({4, 6, 1}, 1);
  io::write_array(dir_.file("one.png"), one.view());
  const io::Array back = io::detail::read_png(dir_.file("one.png"));
  EXPECT_EQ(back.desc.to_string(), "uint8[4, 6]");
  EXPECT_TRUE(back.data == one.data);

  const auto mask =
      make<std::uint8_t>(ipc::DType{ipc::DTypeCode::bool_, 8, 1}, {3, 3}, [](std::size_t i) { return i % 2; });
  io::write_array(dir_.file("mask.png"), mask.view());
  EXPECT_EQ(io::detail::read_png(dir_.file("mask.png")).desc.to_string(), "uint8[3, 3]");
  EXPECT_TRUE(io::detail::read_png(dir_.file("mask.png")).data == mask.data);

  const std::vector<std::uint32_t> values = {0, 1, 255, 256, 65534, 65535};
  const io::Array want = make<std::uint16_t>(ipc::kUInt16, {2, 3}, [&](std::size_t i) { return values[i]; });
  const auto u32 = make<std::uint32_t>(ipc::kUInt32, {2, 3}, [&](std::size_t i) { return values[i]; });
  const auto i32 = make<std::int32_t>(ipc::kInt32, {2, 3}, [&](std::size_t i) { return values[i]; });
  const auto i64 =
      make<std::int64_t>(ipc::DType{ipc::DTypeCode::int_, 64, 1}, {2, 3}, [&](std::size_t i) { return values[i]; });
  const auto u64 =
      make<std::uint64_t>(ipc::DType{ipc::DTypeCode::uint, 64, 1}, {2, 3}, [&](std::size_t i) { return values[i]; });
  for (const io::Array* labels : {&u32, &i32, &i64, &u64}) {
    SCOPED_TRACE(labels->desc.to_string());
    io::write_array(dir_.file("labels.png"), labels->view());
    expect_same(io::detail::read_png(dir_.file("labels.png")), want);
  }
}

TEST_F(Png, ItIsCompressedAndAValidPng) {
  // A label image: long runs of one value, as Cellpose's masks.
  const auto labels = make<std::uint16_t>(ipc::kUInt16, {512, 512}, [](std::size_t i) {
    return static_cast<std::uint16_t>((i / 512 / 32) * 16 + (i % 512) / 32);
  });
  io::write_array(dir_.file("labels.png"), labels.view());
  const auto bytes = read_file_bytes(dir_.file("labels.png"));
  EXPECT_LT(bytes.size(), labels.data.size() / 20) << "not compressed";
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  EXPECT_EQ(std::memcmp(bytes.data(), kSignature, 8), 0);
  expect_same(io::detail::read_png(dir_.file("labels.png")), labels);
}

// ---- what other programs write ----

TEST_F(Png, OneAndFourBitGrayGiveTheirStoredValuesUnscaled) {
  RawPng bits;
  bits.width = 10;
  bits.height = 2;
  bits.depth = 1;
  bits.rows = {{0b10110000, 0b01000000}, {0b01111111, 0b11000000}};  // 10 pixels, padded
  write_raw_png(dir_.file("bits.png"), bits);
  const std::vector<std::uint8_t> want_bits = {1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const io::Array b = io::detail::read_png(dir_.file("bits.png"));
  EXPECT_EQ(b.desc.to_string(), "uint8[2, 10]");
  EXPECT_TRUE(b.data == make<std::uint8_t>(ipc::kUInt8, {2, 10}, [&](std::size_t i) { return want_bits[i]; }).data);

  RawPng nibbles;
  nibbles.width = 5;
  nibbles.height = 1;
  nibbles.depth = 4;
  nibbles.rows = {{0x0f, 0x37, 0xa0}};
  write_raw_png(dir_.file("nibbles.png"), nibbles);
  const io::Array n = io::detail::read_png(dir_.file("nibbles.png"));
  EXPECT_EQ(n.desc.to_string(), "uint8[1, 5]");
  const std::vector<std::uint8_t> want_nibbles = {0, 15, 3, 7, 10};
  EXPECT_TRUE(n.data == make<std::uint8_t>(ipc::kUInt8, {1, 5}, [&](std::size_t i) { return want_nibbles[i]; }).data);
}

TEST_F(Png, AnInterlacedImageIsDeinterlaced) {
  RawPng adam7;
  adam7.width = 13;
  adam7.height = 11;
  adam7.depth = 16;
  adam7.colour = PNG_COLOR_TYPE_RGB;
  adam7.interlace = PNG_INTERLACE_ADAM7;
  const io::Array want = u16({11, 13, 3}, 4);
  const auto* v = reinterpret_cast<const std::uint16_t*>(want.data.data());
  for (std::size_t y = 0; y < 11; ++y) {
    std::vector<unsigned char> row;
    for (std::size_t i = 0; i < 13 * 3; ++i) {
      row.push_back(static_cast<unsigned char>(v[y * 39 + i] >> 8));
      row.push_back(static_cast<unsigned char>(v[y * 39 + i]));
    }
    adam7.rows.push_back(row);
  }
  write_raw_png(dir_.file("adam7.png"), adam7);
  expect_same(io::detail::read_png(dir_.file("adam7.png")), want);
}

RawPng palette_png(bool with_alpha) {
  RawPng p;
  p.width = 4;
  p.height = 2;
  p.colour = PNG_COLOR_TYPE_PALETTE;
  p.palette = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
  if (with_alpha) p.alphas = {255, 128};  // the third entry is opaque
  p.rows = {{0, 1, 2, 1}, {2, 2, 0, 0}};
  return p;
}

TEST_F(Png, APaletteIsExpandedToRgbOrRgbaWithTrns) {
  write_raw_png(dir_.file("palette.png"), palette_png(false));
  write_raw_png(dir_.file("palette_alpha.png"), palette_png(true));
  const io::Array rgb = io::detail::read_png(dir_.file("palette.png"));
  const io::Array rgba = io::detail::read_png(dir_.file("palette_alpha.png"));
  ASSERT_EQ(rgb.desc.to_string(), "uint8[2, 4, 3]");
  ASSERT_EQ(rgba.desc.to_string(), "uint8[2, 4, 4]");
  const auto* p = reinterpret_cast<const std::uint8_t*>(rgb.data.data());
  EXPECT_EQ(std::vector<std::uint8_t>(p, p + 6), (std::vector<std::uint8_t>{10, 20, 30, 200, 100, 0}));
  const auto* q = reinterpret_cast<const std::uint8_t*>(rgba.data.data());
  EXPECT_EQ(std::vector<std::uint8_t>(q, q + 12),
            (std::vector<std::uint8_t>{10, 20, 30, 255, 200, 100, 0, 128, 1, 2, 3, 255}));
}

#if CPIPC_HAVE_OPENCV
// OpenCV's cv::imread(IMREAD_UNCHANGED) as [H, W(, C)] in RGB order.
io::Array opencv_rgb(const std::string& path) {
  const cv::Mat m = cv::imread(path, cv::IMREAD_UNCHANGED);
  EXPECT_FALSE(m.empty()) << path;
  io::Array a;
  const ipc::DType dtype = m.depth() == CV_16U ? ipc::kUInt16 : ipc::kUInt8;
  const std::int64_t channels = m.channels();
  std::vector<std::int64_t> shape = {m.rows, m.cols};
  if (channels > 1) shape.push_back(channels);
  a.desc = ipc::TensorDesc::contiguous(dtype, shape);
  a.data.resize(a.desc.nbytes());
  const std::size_t item = m.elemSize1();
  const std::size_t row = static_cast<std::size_t>(m.cols) * static_cast<std::size_t>(channels) * item;
  for (int y = 0; y < m.rows; ++y) std::memcpy(a.data.data() + y * row, m.ptr(y), row);
  if (channels >= 3) {  // BGR(A) -> RGB(A)
    for (std::size_t px = 0; px < a.data.size(); px += static_cast<std::size_t>(channels) * item) {
      for (std::size_t k = 0; k < item; ++k) std::swap(a.data[px + k], a.data[px + 2 * item + k]);
    }
  }
  return a;
}

TEST_F(Png, ReadsWhatOpenCvReads) {
  const std::vector<std::pair<std::string, io::Array>> images = {
      {"gray8", u8({9, 7}, 1)},     {"gray16", u16({9, 7}, 2)},  {"rgb8", u8({6, 5, 3}, 3)},
      {"rgb16", u16({6, 5, 3}, 4)}, {"rgba8", u8({4, 3, 4}, 5)}, {"rgba16", u16({4, 3, 4}, 6)},
  };
  for (const auto& [name, image] : images) {
    SCOPED_TRACE(name);
    const std::string path = dir_.file(name + ".png");
    write_png(path, image);
    expect_same(io::detail::read_png(path), opencv_rgb(path));
  }
  for (const bool alpha : {false, true}) {
    SCOPED_TRACE(alpha ? "palette with tRNS" : "palette");
    const std::string path = dir_.file(alpha ? "palette_alpha.png" : "palette.png");
    write_raw_png(path, palette_png(alpha));
    expect_same(io::detail::read_png(path), opencv_rgb(path));
  }
}
#endif

// ---- bad files: one line, never a hang ----

TEST_F(Png, ACorruptOrTruncatedFileIsOneLine) {
  const std::string whole = dir_.file("whole.png");
  write_png(whole, u16({64, 64}, 1));
  const auto bytes = read_file_bytes(whole);
  const std::string half = dir_.file("half.png");
  write_bytes(half, bytes.data(), bytes.size() / 2);
  expect_error([&] { (void)io::detail::read_png(half); }, Errc::invalid_argument, half, "corrupt or truncated PNG (");
  // Cut off after the pixels: IEND is missing.
  const std::string no_end = dir_.file("no_end.png");
  write_bytes(no_end, bytes.data(), bytes.size() - 12);
  expect_error([&] { (void)io::detail::read_png(no_end); }, Errc::invalid_argument, no_end,
               "corrupt or truncated PNG (");
  // A flipped bit in the image data: its CRC fails.
  auto flipped = bytes;
  flipped[bytes.size() - 20] ^= std::byte{0x40};
  const std::string bad_crc = dir_.file("crc.png");
  write_bytes(bad_crc, flipped.data(), flipped.size());
  expect_error([&] { (void)io::detail::read_png(bad_crc); }, Errc::invalid_argument, bad_crc,
               "corrupt or truncated PNG (");
  const std::string junk = dir_.file("junk.png");
  write_bytes(junk, "not a png at all", 16);
  expect_error([&] { (void)io::detail::read_png(junk); }, Errc::invalid_argument, junk, "corrupt or truncated PNG (");
  const std::string empty = dir_.file("empty.png");
  write_bytes(empty, "", 0);
  expect_error([&] { (void)io::detail::read_png(empty); }, Errc::invalid_argument, empty, "corrupt or truncated PNG (");
}

TEST_F(Png, NothingIsPrintedForAWarning) {
  // A PNG with an ancillary chunk whose CRC is wrong: libpng warns and skips it.
  const std::string path = dir_.file("warn.png");
  const io::Array image = u8({2, 2}, 1);
  write_png(path, image);
  auto bytes = read_file_bytes(path);
  // tEXt "a\0b" with a wrong CRC, after IHDR (8 + 25 bytes).
  const unsigned char text[] = {0, 0, 0, 3, 't', 'E', 'X', 't', 'a', 0, 'b', 0xde, 0xad, 0xbe, 0xef};
  bytes.insert(bytes.begin() + 33, reinterpret_cast<const std::byte*>(text),
               reinterpret_cast<const std::byte*>(text) + sizeof text);
  write_bytes(path, bytes.data(), bytes.size());
  ::testing::internal::CaptureStderr();
  const io::Array back = io::detail::read_png(path);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  expect_same(back, image);
}

TEST_F(Png, AHugeHeaderIsRefusedBeforeDecoding) {
  // IHDR of 2^24 x 2^24 RGBA16: 2 PiB decoded; no pixels follow.
  std::vector<unsigned char> f = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0,  0, 13, 'I', 'H', 'D',
                                  'R',  1,   0,   0,   0,    1,    0,    0,    0, 16, 6, 0,  0,   0};
  const std::uint32_t crc = crc32(f.data() + 12, 17);
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<unsigned char>(crc >> shift));
  // An empty IDAT: libpng reads the header up to the first one.
  const unsigned char idat[] = {0, 0, 0, 0, 'I', 'D', 'A', 'T'};
  f.insert(f.end(), idat, idat + sizeof idat);
  const std::uint32_t idat_crc = crc32(idat + 4, 4);
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<unsigned char>(idat_crc >> shift));
  const std::string path = dir_.file("huge.png");
  write_bytes(path, f.data(), f.size());
  expect_error([&] { (void)io::detail::read_png(path); }, Errc::out_of_memory, path, "decoding it needs");
}

TEST_F(Png, AFifoIsRefusedAtOnceAndAMissingFileIsNotFound) {
  const std::string fifo = dir_.file("pipe.png");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { (void)io::detail::read_png(fifo); }, Errc::invalid_argument, fifo, "a FIFO");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  expect_error([&] { (void)io::detail::read_png(dir_.file("none.png")); }, Errc::not_found, dir_.file("none.png"),
               "no file");
}

// ---- what cannot be a PNG ----

TEST_F(Png, LabelsAbove65535AndOtherDtypesAreRefusedInOneLine) {
  const std::string path = dir_.file("x.png");
  const auto refused = [&](const io::Array& image, const std::string& why) {
    SCOPED_TRACE(image.desc.to_string());
    expect_error([&] { io::write_array(path, image.view()); }, Errc::invalid_argument, path, why);
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(dir_.path())) << "no temporary is left";
  };
  const std::string labels = "labels below 0 or above 65535 do not fit a PNG's 16 bits; save as .tif or .npy";
  refused(make<std::uint32_t>(ipc::kUInt32, {2, 2}, [](std::size_t i) { return 65535 + i; }), labels);
  refused(make<std::int32_t>(ipc::kInt32, {2, 2}, [](std::size_t i) { return static_cast<int>(i) - 1; }), labels);
  const std::string dtype = "a PNG holds 8- or 16-bit unsigned integers; save as .tif or .npy";
  refused(make<float>(ipc::kFloat32, {2, 2}, [](std::size_t i) { return i; }), dtype);
  refused(make<std::int16_t>(ipc::DType{ipc::DTypeCode::int_, 16, 1}, {2, 2}, [](std::size_t i) { return i; }), dtype);
  refused(make<std::uint32_t>(ipc::kUInt32, {2, 2, 3}, [](std::size_t i) { return i; }), dtype);
  refused(u8({2, 2, 5}, 1), "a PNG is [H, W] or [H, W, 1|2|3|4]");
  refused(u8({4}, 1), "a PNG is [H, W]");
  refused(u8({0, 3}, 1), "a PNG has at least one pixel");
  // A transposed view: not C-contiguous.
  io::Array image = u8({3, 4}, 1);
  ipc::HostView view = image.view();
  view.desc.shape = {4, 3};
  view.desc.strides = {1, 4};
  expect_error([&] { io::write_array(path, view); }, Errc::invalid_argument, path, "not C-contiguous");
}

// A full disk (/dev/full: every write fails with ENOSPC) is one io line, and
// the old file beside it is untouched; a file size limit mid-write keeps
// the old file (FailedWrites.*png in io_files_test.cpp).
TEST_F(Png, AFullDiskIsAnIoErrorAndLeavesTheOldFile) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full here";
  const std::string old_path = dir_.file("masks.png");
  io::write_array(old_path, u16({8, 8}, 1).view());
  const auto old_bytes = read_file_bytes(old_path);
  const std::string link = dir_.file("full.png");
  fs::create_symlink("/dev/full", link);
  expect_error(
      [&] {
        io::write_array(link, u16({64, 64}, 2).view());
      },
      Errc::io, link, "No space left on device; free space");
  EXPECT_TRUE(read_file_bytes(old_path) == old_bytes);
}

}  // namespace
