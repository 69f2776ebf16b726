// Reading images to segment and saving Cellpose's outputs: read_frames,
// outline_polygons / write_outlines_txt (checked against Cellpose's own file,
// made by tools/io/make_outline_fixture.py in tests/data/io) and
// save_cellpose_outputs.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/frames.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/outlines.hpp"
#include "cpipc/io/outputs.hpp"
#include "support/masks_png.hpp"
#include "support/png_stored_decoder.hpp"
#include "support/test_support.hpp"
#include "support/tiff_builder.hpp"
// The fallback codecs themselves, called directly so that they are tested
// in a build with OpenCV too (they are cpipc_io internals, not public API).
#include "../src/io/png_codec.hpp"
#include "../src/io/png_stored.hpp"
#include "../src/io/tiff_baseline.hpp"
#include "../src/io/tiff_reader.hpp"

namespace io = cpipc::io;
namespace ipc = cpipc::ipc;
namespace fs = std::filesystem;
using cpipc::Errc;
using cpipc::Error;
using cpipc::test::read_file_bytes;
using cpipc::test::StoredPng;
using cpipc::test::TempDir;
using cpipc::test::tiff_file;
using cpipc::test::TiffPage;
using cpipc::test::TiffTag;

namespace {

#define SKIP_WITHOUT_IMAGE_CODECS()                                              \
  if (!io::image_codecs_available()) {                                           \
    GTEST_SKIP() << "this cpipc was built without OpenCV: no PNG or TIFF files"; \
  }

std::string data_dir() { return CPIPC_SOURCE_DIR "/tests/data/io"; }

// An array of `dtype` and `shape` whose element i holds value(i).
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

io::Array noise_u16(int h, int w) {
  return make<std::uint16_t>(ipc::kUInt16, {h, w}, [](std::size_t i) { return (i * 2654435761u) >> 7 & 0xffff; });
}

void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The first `keep` of `source`'s bytes, as `path`.
void truncate_copy(const std::string& source, const std::string& path, double keep) {
  const auto bytes = read_file_bytes(source);
  write_bytes(path, {reinterpret_cast<const char*>(bytes.data()), static_cast<std::size_t>(bytes.size() * keep)});
}

// A version 1.0 .npy with any header text (for what write_npy cannot make).
void write_raw_npy(const std::string& path, const std::string& descr, const std::string& shape, std::size_t nbytes) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string file = std::string("\x93NUMPY\x01\x00", 8);
  file += static_cast<char>(dict.size() & 0xff);
  file += static_cast<char>(dict.size() >> 8);
  file += dict;
  file.append(nbytes, '\0');
  write_bytes(path, file);
}

// The file at `path` through the test's own stored-PNG decoder; a failure
// (and nothing) when it breaks a rule of PNG, zlib or deflate.
StoredPng decode_png_or_fail(const std::string& path) {
  try {
    return cpipc::test::decode_stored_png(read_file_bytes(path));
  } catch (const std::runtime_error& e) {
    ADD_FAILURE() << path << ": " << e.what();
    return {};
  }
}

// Samples as a PNG stores them: bytes, or 16-bit big-endian.
std::vector<unsigned char> png_samples(const io::Array& a) {
  std::vector<unsigned char> out;
  const auto* p = reinterpret_cast<const unsigned char*>(a.data.data());
  for (std::size_t i = 0; i < a.data.size(); i += a.desc.dtype.itemsize()) {
    if (a.desc.dtype.itemsize() == 2) out.push_back(p[i + 1]);
    out.push_back(p[i]);
  }
  return out;
}

std::vector<unsigned char> big_endian_u16(const std::vector<std::uint32_t>& values) {
  std::vector<unsigned char> out;
  for (const std::uint32_t v : values)
    out.insert(out.end(), {static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)});
  return out;
}

// read_frames(path) fails with `code`, one line naming the file and saying
// `why`, and nothing else is printed (no OpenCV or libpng warnings).
void expect_refused(const std::string& path, Errc code, const std::string& why) {
  ::testing::internal::CaptureStderr();
  try {
    (void)io::read_frames(path);
    ::testing::internal::GetCapturedStderr();
    ADD_FAILURE() << "read_frames('" << path << "') did not throw";
  } catch (const Error& e) {
    const std::string printed = ::testing::internal::GetCapturedStderr();
    const std::string message = e.what();
    EXPECT_EQ(e.code(), code) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(why), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(printed, "") << "for " << message;
  }
}

class ReadFrames : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(ReadFrames, AGray16BitPngIsOneFrame) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const io::Array image = noise_u16(7, 9);
  io::write_array(dir_.file("a.png"), image.view());
  const auto frames = io::read_frames(dir_.file("a.png"));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].desc.to_string(), "uint16[7, 9]");
  EXPECT_EQ(frames[0].data, image.data);
}

TEST_F(ReadFrames, AColourPngKeepsRgbOrderAsReadArrayDoes) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const auto rgb = make<std::uint8_t>(ipc::kUInt8, {4, 5, 3}, [](std::size_t i) { return i % 3 == 0 ? 200 : i % 3; });
  io::write_array(dir_.file("rgb.png"), rgb.view());
  const auto frames = io::read_frames(dir_.file("rgb.png"));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].desc.to_string(), "uint8[4, 5, 3]");
  EXPECT_EQ(frames[0].data, rgb.data);
  EXPECT_EQ(frames[0].data, io::read_array(dir_.file("rgb.png")).data);
}

TEST_F(ReadFrames, AFloatTiffIsOneFrame) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const auto image = make<float>(ipc::kFloat32, {3, 4}, [](std::size_t i) { return 0.25f * i - 1.0f; });
  io::write_array(dir_.file("f.tif"), image.view());
  const auto frames = io::read_frames(dir_.file("f.tif"));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].desc.to_string(), "float32[3, 4]");
  EXPECT_EQ(frames[0].data, image.data);
}

TEST_F(ReadFrames, AMultiPageTiffGivesOneFramePerPage) {
  // Uncompressed: read by OpenCV, or by the baseline reader without it.
  // Written by tifffile (make_outline_fixture.py): page k = 1000 k + 10 row + column.
  const auto frames = io::read_frames(data_dir() + "/stack3.tif");
  ASSERT_EQ(frames.size(), 3u);
  for (std::size_t k = 0; k < frames.size(); ++k) {
    ASSERT_EQ(frames[k].desc.to_string(), "uint16[6, 5]");
    const auto* p = reinterpret_cast<const std::uint16_t*>(frames[k].data.data());
    for (int r = 0; r < 6; ++r) {
      for (int c = 0; c < 5; ++c) EXPECT_EQ(p[r * 5 + c], 1000 * k + 10 * r + c) << k << " " << r << " " << c;
    }
  }
  // read_array still reads the first page only.
  EXPECT_EQ(io::read_array(data_dir() + "/stack3.tif").data, frames[0].data);
}

TEST_F(ReadFrames, AOneByOneImageIsRead) {
  const io::Array pixel = make<std::uint8_t>(ipc::kUInt8, {1, 1}, [](std::size_t) { return 42; });
  io::write_npy(dir_.file("one.npy"), pixel.view());
  std::vector<std::string> files = {"one.npy"};
  if (io::image_codecs_available()) {
    io::write_array(dir_.file("one.png"), pixel.view());
    files.push_back("one.png");
  }
  for (const std::string& file : files) {
    const auto frames = io::read_frames(dir_.file(file));
    ASSERT_EQ(frames.size(), 1u) << file;
    EXPECT_EQ(frames[0].desc.to_string(), "uint8[1, 1]") << file;
    EXPECT_EQ(frames[0].data, pixel.data) << file;
  }
}

TEST_F(ReadFrames, ANpyIsOneFrameGrayOrChannelsLast) {
  const auto gray = make<float>(ipc::kFloat32, {5, 6}, [](std::size_t i) { return i * 0.5f; });
  const auto channels = make<std::uint16_t>(ipc::kUInt16, {5, 6, 8}, [](std::size_t i) { return i; });
  io::write_npy(dir_.file("gray.npy"), gray.view());
  io::write_npy(dir_.file("eight.npy"), channels.view());
  const auto g = io::read_frames(dir_.file("gray.npy"));
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].desc.to_string(), "float32[5, 6]");
  EXPECT_EQ(g[0].data, gray.data);
  const auto c = io::read_frames(dir_.file("eight.npy"));
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].desc.to_string(), "uint16[5, 6, 8]");
}

TEST_F(ReadFrames, ABoolNpyIsReadAsUint8) {
  write_raw_npy(dir_.file("b.npy"), "|b1", "2, 3", 6);
  const auto frames = io::read_frames(dir_.file("b.npy"));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].desc.to_string(), "uint8[2, 3]");
}

TEST_F(ReadFrames, ANpyStackOrChannelsFirstIsRefused) {
  write_raw_npy(dir_.file("stack.npy"), "<u2", "5, 16, 16", 5 * 16 * 16 * 2);
  expect_refused(dir_.file("stack.npy"), Errc::invalid_argument,
                 "at most 8 channels, and this one is uint16[5, 16, 16]");
}

TEST_F(ReadFrames, NpyOfTheWrongRankIsRefused) {
  write_raw_npy(dir_.file("1d.npy"), "<f4", "16,", 64);
  write_raw_npy(dir_.file("4d.npy"), "<f4", "1, 2, 2, 1", 16);
  write_raw_npy(dir_.file("5d.npy"), "<f4", "1, 1, 2, 2, 1", 16);
  expect_refused(dir_.file("1d.npy"), Errc::invalid_argument, "an image is [H, W] or [H, W, C]");
  expect_refused(dir_.file("4d.npy"), Errc::invalid_argument, "an image is [H, W] or [H, W, C]");
  expect_refused(dir_.file("5d.npy"), Errc::invalid_argument, "5 dimensions");
}

TEST_F(ReadFrames, AnImageWithNoPixelsIsRefused) {
  write_raw_npy(dir_.file("empty.npy"), "<u2", "0, 0", 0);
  write_raw_npy(dir_.file("no_columns.npy"), "<u2", "4, 0", 0);
  expect_refused(dir_.file("empty.npy"), Errc::invalid_argument, "empty image (uint16[0, 0])");
  expect_refused(dir_.file("no_columns.npy"), Errc::invalid_argument, "empty image");
}

TEST_F(ReadFrames, UnsupportedDtypesAreRefused) {
  write_raw_npy(dir_.file("complex.npy"), "<c8", "2, 2", 32);
  write_raw_npy(dir_.file("int64.npy"), "<i8", "2, 2", 32);
  expect_refused(dir_.file("complex.npy"), Errc::invalid_argument, "dtype '<c8' is not supported");
  expect_refused(dir_.file("int64.npy"), Errc::invalid_argument, "int64 pixels are not supported");
}

TEST_F(ReadFrames, AMissingFileIsNotFound) {
  expect_refused(dir_.file("absent.png"), Errc::not_found, "no file");
  expect_refused(dir_.file("absent.npy"), Errc::not_found, "no file");
}

TEST_F(ReadFrames, ADirectoryIsNotAnImage) {
  fs::create_directory(dir_.file("folder.tif"));
  expect_refused(dir_.file("folder.tif"), Errc::invalid_argument, "it is a directory, not an image file");
}

TEST_F(ReadFrames, AnEmptyFileIsRefused) {
  for (const char* file : {"empty.png", "empty.tif", "empty.npy"}) {
    write_bytes(dir_.file(file), "");
    expect_refused(dir_.file(file), Errc::invalid_argument, "the file is empty (0 bytes)");
  }
}

TEST_F(ReadFrames, ATextFileNamedPngIsNotAnImage) {
  write_bytes(dir_.file("notes.png"), "these are not pixels\n");
  expect_refused(dir_.file("notes.png"), Errc::invalid_argument, "not an image file");
}

TEST_F(ReadFrames, AnUnknownExtensionIsRefused) {
  write_bytes(dir_.file("image.gif"), "GIF89a");
  expect_refused(dir_.file("image.gif"), Errc::invalid_argument, "unknown extension '.gif'");
}

TEST_F(ReadFrames, ATruncatedPngIsCorrupt) {
  SKIP_WITHOUT_IMAGE_CODECS();
  io::write_array(dir_.file("whole.png"), noise_u16(64, 64).view());
  truncate_copy(dir_.file("whole.png"), dir_.file("half.png"), 0.5);
  truncate_copy(dir_.file("whole.png"), dir_.file("header.png"), 0.01);
  expect_refused(dir_.file("half.png"), Errc::invalid_argument, "corrupt or truncated");
  expect_refused(dir_.file("header.png"), Errc::invalid_argument, "corrupt or truncated");
}

TEST_F(ReadFrames, ATruncatedTiffIsCorrupt) {
  SKIP_WITHOUT_IMAGE_CODECS();
  io::write_array(dir_.file("whole.tif"), noise_u16(64, 64).view());  // OpenCV: directory after the data
  truncate_copy(dir_.file("whole.tif"), dir_.file("half.tif"), 0.5);
  expect_refused(dir_.file("half.tif"), Errc::invalid_argument, "corrupt or truncated");
}

TEST_F(ReadFrames, ATruncatedUncompressedTiffIsCorrupt) {
  // tifffile: directories first, so the cut is in the pixels (any build).
  truncate_copy(data_dir() + "/stack3.tif", dir_.file("stack_half.tif"), 0.6);
  expect_refused(dir_.file("stack_half.tif"), Errc::invalid_argument, "corrupt or truncated");
}

// Needs read_frames/read_array routed to read_png (issue 14's reader).
TEST_F(ReadFrames, WithoutImageCodecsAPngIsReadThroughLibpng) {
  if (io::image_codecs_available()) GTEST_SKIP() << "built with OpenCV: this checks a build without it";
  const io::Array image = noise_u16(33, 17);
  io::write_array(dir_.file("x.png"), image.view());
  const auto frames = io::read_frames(dir_.file("x.png"));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].desc.to_string(), "uint16[33, 17]");
  EXPECT_EQ(frames[0].data, image.data);
  EXPECT_EQ(io::read_array(dir_.file("x.png")).data, image.data);
  write_bytes(dir_.file("bad.png"), std::string("\x89PNG\r\n\x1a\n", 8) + "rest");
  expect_refused(dir_.file("bad.png"), Errc::invalid_argument, "corrupt or truncated PNG (");
  io::write_npy(dir_.file("x.npy"), image.view());
  EXPECT_EQ(io::read_frames(dir_.file("x.npy")).size(), 1u) << ".npy needs no codecs";
}

// The label image of make_outline_fixture.py: touching masks, a ring, masks
// on the border, one pixel, a diagonal line, split masks, a gap in the labels.
struct Labels {
  std::vector<std::uint32_t> data;
  int height = 0, width = 0;
  std::uint32_t count = 0;
};

Labels fixture_labels() {
  const io::Array a = io::read_npy(data_dir() + "/outlines_labels.npy");
  Labels l;
  l.height = static_cast<int>(a.desc.shape[0]);
  l.width = static_cast<int>(a.desc.shape[1]);
  l.data = io::to_labels(a, "outlines_labels.npy");
  for (const std::uint32_t v : l.data) l.count = std::max(l.count, v);
  return l;
}

TEST(Outlines, TheTextFileIsCellposesByteForByte) {
  const Labels l = fixture_labels();
  TempDir dir;
  io::write_outlines_txt(dir.file("out.txt"), io::outline_polygons(l.data.data(), l.height, l.width, l.count));
  const auto ours = read_file_bytes(dir.file("out.txt"));
  const auto cellposes = read_file_bytes(data_dir() + "/outlines_cp_outlines.txt");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ours.data()), ours.size()),
            std::string(reinterpret_cast<const char*>(cellposes.data()), cellposes.size()));
}

TEST(Outlines, OneEntryPerLabelPresentSmallMasksEmpty) {
  const Labels l = fixture_labels();
  ASSERT_EQ(l.count, 14u);
  const auto polygons = io::outline_polygons(l.data.data(), l.height, l.width, l.count);
  ASSERT_EQ(polygons.size(), 13u) << "label 10 is absent";
  EXPECT_TRUE(polygons[4].empty()) << "label 5 is one pixel";
  EXPECT_TRUE(polygons[8].empty()) << "label 9 is 2x2: four contour points";
  // Label 1 is the rectangle x 4..11, y 2..9, traced from its top-left corner.
  ASSERT_EQ(polygons[0].size(), 2u * (8 + 8) - 4);
  EXPECT_EQ(polygons[0].front(), (std::array<int, 2>{4, 2}));
  // Labels above count are ignored.
  EXPECT_EQ(io::outline_polygons(l.data.data(), l.height, l.width, 3).size(), 3u);
}

TEST(Outlines, NoMasksNoPolygons) {
  const std::vector<std::uint32_t> zeros(12, 0);
  EXPECT_TRUE(io::outline_polygons(zeros.data(), 3, 4, 0).empty());
  EXPECT_TRUE(io::outline_polygons(nullptr, 0, 0, 5).empty());
  EXPECT_THROW((void)io::outline_polygons(nullptr, -1, 4, 1), Error);
}

TEST(Outlines, TheTextFormatIsCommaSeparatedXYOneLineEach) {
  TempDir dir;
  io::write_outlines_txt(dir.file("o.txt"), {{{1, 2}, {3, 4}, {10, 20}}, {}, {{0, 0}}});
  const auto bytes = read_file_bytes(dir.file("o.txt"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()), "1,2,3,4,10,20\n\n0,0\n");
  EXPECT_THROW(io::write_outlines_txt(dir.file("no/such/dir/o.txt"), {}), Error);
}

TEST(Outputs, NamesFollowCellposeAndSwitchToTifAt65536Masks) {
  EXPECT_EQ(io::masks_output_path("out", "img", 0), "out/img_cp_masks.png");
  EXPECT_EQ(io::masks_output_path("out", "img", 65535), "out/img_cp_masks.png");
  EXPECT_EQ(io::masks_output_path("out/", "img", 65536), "out/img_cp_masks.tif");
  EXPECT_EQ(io::outlines_output_path("/data/run", "img.2"), "/data/run/img.2_cp_outlines.txt");
}

io::Array labels_array(const Labels& l) {
  return make<std::uint32_t>(ipc::kUInt32, {l.height, l.width}, [&](std::size_t i) { return l.data[i]; });
}

TEST(Outputs, SavesAUint16PngAndTheOutlinesCreatingTheDirectory) {
  const Labels l = fixture_labels();
  const io::Array labels = labels_array(l);
  TempDir dir;
  const std::string out = dir.file("new/nested");
  const auto written = io::save_cellpose_outputs(out, "cells", labels.view(), l.count, true);
  ASSERT_EQ(written, (std::vector<std::string>{out + "/cells_cp_masks.png", out + "/cells_cp_outlines.txt"}));
  if (io::image_codecs_available()) {
    EXPECT_EQ(io::read_array(written[0]).desc.to_string(), "uint16[40, 48]");
  }
  // 16 bits, as Cellpose's astype(np.uint16); OpenCV's PNG or cpipc's stored one.
  EXPECT_EQ(cpipc::test::read_masks_png(written[0]), l.data);
  EXPECT_EQ(read_file_bytes(written[1]), read_file_bytes(data_dir() + "/outlines_cp_outlines.txt"));
}

TEST(Outputs, AnImageWithNoMasksStillGetsItsFiles) {
  const auto zeros = make<std::uint16_t>(ipc::kUInt16, {3, 3}, [](std::size_t) { return 0; });
  TempDir dir;
  const auto written = io::save_cellpose_outputs(dir.path().string(), "blank", zeros.view(), 0, true);
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(cpipc::test::read_masks_png(written[0]), std::vector<std::uint32_t>(9, 0));
  EXPECT_TRUE(read_file_bytes(written[1]).empty());
}

TEST(Outputs, From65536MasksTheMasksAreAUint32Tiff) {
  // 256 x 257 pixels, each its own mask: labels 1..65792.
  const auto labels = make<std::uint32_t>(ipc::kUInt32, {256, 257}, [](std::size_t i) { return i + 1; });
  TempDir dir;
  const auto written = io::save_cellpose_outputs(dir.path().string(), "many", labels.view(), 256 * 257, false);
  ASSERT_EQ(written, std::vector<std::string>{dir.file("many_cp_masks.tif")});
  // A Deflate TIFF written by libtiff (write_tiff): one uint32 page.
  const auto stored = io::detail::read_tiff(written[0]);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].dtype, ipc::kUInt32);
  EXPECT_EQ(stored[0].axes, "YX");
  EXPECT_EQ(stored[0].data, labels.data);
  // OpenCV 4 has no uint32; the baseline reader takes over, silently, with or without OpenCV.
  ::testing::internal::CaptureStderr();
  const auto frames = io::read_frames(written[0]);
  const io::Array first = io::read_array(written[0]);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].desc.to_string(), "uint32[256, 257]");
  EXPECT_EQ(frames[0].data, labels.data);
  EXPECT_EQ(first.desc.to_string(), "uint32[256, 257]");
  EXPECT_EQ(first.data, labels.data);
}

TEST(Outputs, LabelsAboveTheCountAreRefused) {
  const Labels l = fixture_labels();
  const io::Array labels = labels_array(l);
  TempDir dir;
  try {
    (void)io::save_cellpose_outputs(dir.file("out"), "x", labels.view(), 5, false);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("label 6 is above the count 5"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("out"))) << "nothing is written";
}

TEST(Outputs, AnOutputDirectoryThatIsAFileIsAnIoError) {
  const auto labels = make<std::uint16_t>(ipc::kUInt16, {2, 2}, [](std::size_t) { return 0; });
  TempDir dir;
  write_bytes(dir.file("file"), "x");
  for (const std::string& out : {dir.file("file"), dir.file("file/below")}) {
    try {
      (void)io::save_cellpose_outputs(out, "x", labels.view(), 0, false);
      ADD_FAILURE() << "no error for " << out;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::io) << e.what();
    }
  }
}

TEST(Outputs, WithoutImageCodecsTheMasksAreAUint16PngAndTheOutlinesCellposes) {
  if (io::image_codecs_available()) GTEST_SKIP() << "built with OpenCV: this checks a build without it";
  const Labels l = fixture_labels();
  const io::Array labels = labels_array(l);
  TempDir dir;
  const auto written = io::save_cellpose_outputs(dir.path().string(), "x", labels.view(), l.count, true);
  ASSERT_EQ(written, (std::vector<std::string>{dir.file("x_cp_masks.png"), dir.file("x_cp_outlines.txt")}));
  EXPECT_EQ(read_file_bytes(written[1]), read_file_bytes(data_dir() + "/outlines_cp_outlines.txt"));
  const io::Array masks = io::detail::read_png(written[0]);  // libpng, as with OpenCV
  EXPECT_EQ(masks.desc.to_string(), "uint16[40, 48]");
  EXPECT_EQ(io::to_labels(masks, written[0]), l.data);
}

// ---- cpipc's own uncompressed-TIFF reader (tiff_baseline.cpp) ----

void expect_same(const io::Array& got, const io::Array& want) {
  EXPECT_EQ(got.desc.to_string(), want.desc.to_string());
  EXPECT_EQ(got.data, want.data);
}

// read_baseline_tiff(path) fails with `code`, one line naming the file and
// saying `why` (and, with `fix`, what to do).
void expect_baseline_refuses(const std::string& path, const std::string& why, const std::string& fix = "",
                             Errc code = Errc::invalid_argument) {
  try {
    (void)io::detail::read_baseline_tiff(path);
    ADD_FAILURE() << "read_baseline_tiff('" << path << "') did not throw; expected " << why;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.code(), code) << message;
    EXPECT_NE(message.find("'" + path + "'"), std::string::npos) << message;
    EXPECT_NE(message.find(why), std::string::npos) << message;
    EXPECT_NE(message.find(fix), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

#if CPIPC_HAVE_ZLIB
constexpr const char* kConvert =
    ", and cpipc's own TIFF reader (without OpenCV, and for more than 4 samples per pixel) reads only "
    "uncompressed and Deflate TIFF; convert it to .npy or an uncompressed TIFF";
#else
constexpr const char* kConvert =
    ", and cpipc's own TIFF reader (without OpenCV, and for more than 4 samples per pixel) reads only "
    "uncompressed TIFF; convert it to .npy or an uncompressed TIFF";
#endif

io::Array gray8() {
  return make<std::uint8_t>(ipc::kUInt8, {5, 7}, [](std::size_t i) { return i * 37 + 3; });
}
io::Array gray16() {
  return make<std::uint16_t>(ipc::kUInt16, {4, 3}, [](std::size_t i) { return (i * 2654435761u) >> 9 & 0xffff; });
}
io::Array int8_ramp() {
  return make<std::int8_t>(ipc::DType{ipc::DTypeCode::int_, 8, 1}, {2, 3},
                           [](std::size_t i) { return static_cast<std::int8_t>(i * 50 - 128); });
}
io::Array rgb8() {
  return make<std::uint8_t>(ipc::kUInt8, {3, 4, 3}, [](std::size_t i) { return 255 - i * 5; });
}

class BaselineTiff : public ::testing::Test {
 protected:
  // `bytes` as dir_/name; returns the path.
  std::string file(const std::string& name, const std::string& bytes) {
    write_bytes(dir_.file(name), bytes);
    return dir_.file(name);
  }
  TempDir dir_;
};

// read_frames counts a TIFF's pages before it decodes them: a chain of
// directories that loops is one line at once, not a million directories.
TEST_F(BaselineTiff, ReadFramesRefusesALoopingChainAtOnce) {
  const std::string path = file("loop.tif", tiff_file(false, {{gray16()}, {gray8()}}, true));
  try {
    (void)io::read_frames(path);
    ADD_FAILURE() << "a looping TIFF was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("points back to an earlier one"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST_F(BaselineTiff, GrayPagesInBothByteOrders) {
  for (const bool big : {false, true}) {
    SCOPED_TRACE(big ? "MM" : "II");
    const std::string path = file(big ? "mm.tif" : "ii.tif", tiff_file(big, {{gray8()}, {gray16()}}));
    const auto pages = io::detail::read_baseline_tiff(path);
    ASSERT_EQ(pages.size(), 2u);
    expect_same(pages[0], gray8());
    expect_same(pages[1], gray16());
    const auto first = io::detail::read_baseline_tiff(path, 1);
    ASSERT_EQ(first.size(), 1u);
    expect_same(first[0], gray8());
  }
}

TEST_F(BaselineTiff, ColourIsChannelsLastInFileOrder) {
  const auto rgba8 = make<std::uint8_t>(ipc::kUInt8, {2, 5, 4}, [](std::size_t i) { return i * 3; });
  const auto rgb16 = make<std::uint16_t>(ipc::kUInt16, {3, 2, 3}, [](std::size_t i) { return 65535 - i * 999; });
  const auto gray_alpha = make<std::uint8_t>(ipc::kUInt8, {2, 3, 2}, [](std::size_t i) { return i; });
  for (const bool big : {false, true}) {
    SCOPED_TRACE(big ? "MM" : "II");
    const std::string path = file("colour.tif", tiff_file(big, {{rgb8(), 2}, {rgba8, 2}, {rgb16, 2}, {gray_alpha}}));
    const auto pages = io::detail::read_baseline_tiff(path);
    ASSERT_EQ(pages.size(), 4u);
    expect_same(pages[0], rgb8());
    expect_same(pages[1], rgba8);
    expect_same(pages[2], rgb16);
    expect_same(pages[3], gray_alpha);
  }
}

TEST_F(BaselineTiff, SignedAndFloatSamples) {
  const auto i8 = int8_ramp();
  const auto i16 = make<std::int16_t>(ipc::DType{ipc::DTypeCode::int_, 16, 1}, {3, 2},
                                      [](std::size_t i) { return static_cast<std::int16_t>(i * 9000 - 30000); });
  const auto i32 = make<std::int32_t>(
      ipc::kInt32, {2, 2}, [](std::size_t i) { return -2'000'000'000 + 1'333'333'333 * static_cast<int>(i); });
  const auto f32 = make<float>(ipc::kFloat32, {3, 4}, [](std::size_t i) { return 0.25f * i - 1.5f; });
  const auto f64 = make<double>(ipc::DType{ipc::DTypeCode::float_, 64, 1}, {2, 3},
                                [](std::size_t i) { return 1e300 / (i + 1) - 3.0; });
  for (const bool big : {false, true}) {
    SCOPED_TRACE(big ? "MM" : "II");
    const std::string path = file("typed.tif", tiff_file(big, {{i8}, {i16}, {i32}, {f32}, {f64}}));
    const auto pages = io::detail::read_baseline_tiff(path);
    ASSERT_EQ(pages.size(), 5u);
    expect_same(pages[0], i8);
    expect_same(pages[1], i16);
    expect_same(pages[2], i32);
    expect_same(pages[3], f32);
    expect_same(pages[4], f64);
  }
}

TEST_F(BaselineTiff, StripsAreReadWhereTheirOffsetsSay) {
  const auto image = make<std::uint16_t>(ipc::kUInt16, {7, 5}, [](std::size_t i) { return i * 1001; });
  for (const bool big : {false, true}) {
    SCOPED_TRACE(big ? "MM" : "II");
    TiffPage strips{image, 1, 2, true};  // 4 strips, the last of one row, stored last first
    TiffPage huge_rps{image};
    huge_rps.tags[278] = {4, 1, 0xffffffff};  // RowsPerStrip's default: one strip
    const std::string path = file("strips.tif", tiff_file(big, {strips, huge_rps}));
    const auto pages = io::detail::read_baseline_tiff(path);
    ASSERT_EQ(pages.size(), 2u);
    expect_same(pages[0], image);
    expect_same(pages[1], image);
  }
}

TEST_F(BaselineTiff, WhiteIsZeroIsInvertedAt8BitsOnlyAsOpenCvReadsIt) {
  io::Array inverted = gray8();
  for (std::byte& b : inverted.data) b = ~b;
  io::Array inverted_i8 = int8_ramp();
  for (std::byte& b : inverted_i8.data) b = ~b;
  const std::string path = file("white.tif", tiff_file(true, {{gray8(), 0}, {int8_ramp(), 0}, {gray16(), 0}}));
  const auto pages = io::detail::read_baseline_tiff(path);
  ASSERT_EQ(pages.size(), 3u);
  expect_same(pages[0], inverted);
  expect_same(pages[1], inverted_i8);
  expect_same(pages[2], gray16());  // as stored (ReadsWhatOpenCvReads compares with OpenCV)
}

TEST_F(BaselineTiff, ReadsTheUint32MasksOfSaveCellposeOutputs) {
  const auto labels =
      make<std::uint32_t>(ipc::kUInt32, {300, 401}, [](std::size_t i) { return i % 7 ? 65536 + i * 7 % 120300 : 0; });
  const auto written = io::save_cellpose_outputs(dir_.path().string(), "big", labels.view(), 186'000, false);
  ASSERT_EQ(written, std::vector<std::string>{dir_.file("big_cp_masks.tif")});
  const auto pages = io::detail::read_baseline_tiff(written[0]);
  ASSERT_EQ(pages.size(), 1u);
  expect_same(pages[0], labels);
}

// Deflate, as Cellpose (io.imsave) and tifffile write TIFF: tools/io/make_tiff_fixtures.py.
TEST_F(BaselineTiff, ReadsCellposesDeflateTiffsAndHorizontalDifferencing) {
#if CPIPC_HAVE_ZLIB
  const std::string dir = CPIPC_SOURCE_DIR "/tests/data/io/";
  const auto masks = io::detail::read_baseline_tiff(dir + "cellpose_masks_u32.tif");
  ASSERT_EQ(masks.size(), 1u);
  expect_same(masks[0], make<std::uint32_t>(ipc::kUInt32, {40, 48}, [](std::size_t i) {
                return i % 5 ? static_cast<std::uint32_t>(70000 + 7 * i) : 0u;
              }));
  const auto stack = io::detail::read_baseline_tiff(dir + "zlib_u16_stack.tif");
  ASSERT_EQ(stack.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    expect_same(stack[k], make<std::uint16_t>(ipc::kUInt16, {24, 30}, [&](std::size_t i) {
                  return static_cast<std::uint16_t>(1000 * k + 10 * (i / 30) + i % 30);
                }));
  }
  const auto rgb = io::detail::read_baseline_tiff(dir + "zlib_rgb8_predictor.tif");
  ASSERT_EQ(rgb.size(), 1u);
  expect_same(rgb[0], make<std::uint8_t>(ipc::kUInt8, {20, 24, 3},
                                         [](std::size_t i) { return static_cast<std::uint8_t>(i % 251); }));
  expect_baseline_refuses(dir + "zlib_f32_predictor.tif",
                          "it is a TIFF with the floating-point predictor (Predictor 3)" + std::string(kConvert));
  // What every reader of cpipc's gets: read_frames falls back to this reader
  // where OpenCV refuses (uint32) or is absent.
  expect_same(io::read_frames(dir + "cellpose_masks_u32.tif").at(0), masks[0]);
#else
  GTEST_SKIP() << "built without zlib: Deflate TIFF is refused";
#endif
}

TEST_F(BaselineTiff, DamagedDeflateStripsAreOneLine) {
#if CPIPC_HAVE_ZLIB
  const std::vector<std::byte> raw = read_file_bytes(CPIPC_SOURCE_DIR "/tests/data/io/zlib_u16_stack.tif");
  const std::string good(reinterpret_cast<const char*>(raw.data()), raw.size());
  // Every single-byte change and every truncation: a clean error or the
  // right size of pixels, never a crash (ASan builds check the rest).
  for (std::size_t at = 8; at < good.size(); at += 7) {
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    const std::string path = file("flip.tif", bad);
    try {
      const auto pages = io::detail::read_baseline_tiff(path);
      for (const auto& p : pages) EXPECT_EQ(p.data.size(), p.desc.nbytes());
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    const std::string cut = file("cut.tif", good.substr(0, at));
    try {
      (void)io::detail::read_baseline_tiff(cut);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument) << e.what();
    }
  }
#else
  GTEST_SKIP() << "built without zlib";
#endif
}

std::string sample(const std::string& name) { return CPIPC_SOURCE_DIR "/data/samples/" + name; }

TEST_F(BaselineTiff, ReadsTheBundledTiffs) {
  // data/samples: uncompressed uint16, written by tifffile.
  for (const char* name : {"cells_0.tif", "cells_1.tif", "cells_2.tif"}) {
    const auto pages = io::detail::read_baseline_tiff(sample(name));
    ASSERT_EQ(pages.size(), 1u) << name;
    EXPECT_EQ(pages[0].desc.to_string(), "uint16[384, 384]") << name;
    const auto* p = reinterpret_cast<const std::uint16_t*>(pages[0].data.data());
    EXPECT_GT(*std::max_element(p, p + 384 * 384), *std::min_element(p, p + 384 * 384)) << name << " is flat";
  }
  // tests/data/io/stack3.tif: page k = 1000 k + 10 row + column.
  const auto pages = io::detail::read_baseline_tiff(data_dir() + "/stack3.tif");
  ASSERT_EQ(pages.size(), 3u);
  for (std::size_t k = 0; k < pages.size(); ++k) {
    const auto want =
        make<std::uint16_t>(ipc::kUInt16, {6, 5}, [&](std::size_t i) { return 1000 * k + 10 * (i / 5) + i % 5; });
    expect_same(pages[k], want);
  }
}

TEST_F(BaselineTiff, ReadsWhatOpenCvReads) {
  // The bundled files and hand-built ones, all of depths OpenCV 4 reads (so
  // read_frames gives OpenCV's pixels, not the baseline reader's fallback).
  std::vector<std::string> paths = {sample("cells_0.tif"), sample("cells_1.tif"), sample("cells_2.tif"),
                                    data_dir() + "/stack3.tif"};
  const auto i16 = make<std::int16_t>(ipc::DType{ipc::DTypeCode::int_, 16, 1}, {3, 4},
                                      [](std::size_t i) { return static_cast<std::int16_t>(i * 3000 - 20000); });
  const auto f32 = make<float>(ipc::kFloat32, {6, 3}, [](std::size_t i) { return i / 7.0f - 1.0f; });
  const auto rgba8 = make<std::uint8_t>(ipc::kUInt8, {2, 5, 4}, [](std::size_t i) { return i * 3; });
  for (const bool big : {false, true}) {
    const std::string tag = big ? "mm" : "ii";
    paths.push_back(file(tag + "_gray.tif", tiff_file(big, {{gray8()}, {gray16(), 1, 3}})));
    paths.push_back(file(tag + "_rgb.tif", tiff_file(big, {{rgb8(), 2, 1, true}})));
    paths.push_back(file(tag + "_rgba.tif", tiff_file(big, {{rgba8, 2}})));
    paths.push_back(file(tag + "_i16.tif", tiff_file(big, {{i16}})));
    paths.push_back(file(tag + "_f32.tif", tiff_file(big, {{f32, 1, 4}})));
    paths.push_back(file(tag + "_white_is_zero.tif", tiff_file(big, {{gray8(), 0}})));
    paths.push_back(file(tag + "_white_is_zero16.tif", tiff_file(big, {{gray16(), 0}})));
    paths.push_back(file(tag + "_white_is_zero_f.tif", tiff_file(big, {{f32, 0}})));
    paths.push_back(file(tag + "_white_is_zero_i8.tif", tiff_file(big, {{int8_ramp(), 0}})));
  }
  if (!io::image_codecs_available()) GTEST_SKIP() << "this cpipc has no OpenCV to compare with";
  ASSERT_EQ(paths.size(), 4u + 2 * 9);
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    const auto ours = io::detail::read_baseline_tiff(path);
    const auto opencv = io::read_frames(path);  // the plugin reads these itself
    ASSERT_EQ(ours.size(), opencv.size());
    for (std::size_t k = 0; k < ours.size(); ++k) expect_same(ours[k], opencv[k]);
  }
}

TEST_F(BaselineTiff, DamagedFilesGiveOneLineNotACrash) {
  const std::string good = tiff_file(false, {{gray16()}});
  expect_baseline_refuses(file("empty.tif", ""), "corrupt or truncated TIFF (no header)");
  expect_baseline_refuses(file("header.tif", good.substr(0, 5)), "corrupt or truncated TIFF (no header)");
  expect_baseline_refuses(file("no_ifd.tif", good.substr(0, 20)),
                          "corrupt or truncated TIFF (directory 1 lies past the end of the file)");
  expect_baseline_refuses(file("cut_ifd.tif", good.substr(0, good.size() - 10)), "directory 1 lies past the end");
  expect_baseline_refuses(file("entries.tif", std::string("II*\0\x08\0\0\0\xff\xff", 10)),
                          "directory 1 lies past the end");
  expect_baseline_refuses(file("not.tif", "GIF89a, not a TIFF"), "not a TIFF file");
  expect_baseline_refuses(file("not42.tif", std::string("II\x07\0\x08\0\0\0", 8)), "not a TIFF file");
  expect_baseline_refuses(dir_.file("absent.tif"), "no file", "", Errc::not_found);
  expect_baseline_refuses(dir_.path().string(), "it is a directory");

  // A two-page file whose second page is cut in its pixels.
  const std::string two = tiff_file(false, {{gray16()}, {gray8()}});
  TiffPage page2_past_end{gray8()};
  page2_past_end.tags[273] = {4, 1, static_cast<std::uint32_t>(two.size()) - 10};
  expect_baseline_refuses(file("page2.tif", tiff_file(false, {{gray16()}, page2_past_end})),
                          "strip 1 (page 2) lies past the end of the file");

  const auto damaged = [&](const std::string& name, std::uint16_t tag, TiffTag value, const std::string& why,
                           bool big = false) {
    TiffPage page{gray16()};
    page.tags[tag] = value;
    expect_baseline_refuses(file(name, tiff_file(big, {page})), why);
  };
  damaged("offset.tif", 273, {4, 1, 1'000'000}, "corrupt or truncated TIFF (strip 1 lies past the end of the file)");
  damaged("offset_wraps.tif", 273, {4, 1, 0xfffffff0}, "strip 1 lies past the end of the file", true);
  damaged("short_count.tif", 279, {4, 1, 5}, "strip 1 holds 5 bytes, not 24");
  damaged("huge.tif", 256, {4, 1, 100'000}, "100000 x 4 pixels need more bytes than the file has");
  damaged("hostile_count.tif", 273, {4, 0x40000000, 8}, "tag 273 has more values than the file has bytes");
  damaged("values_past_end.tif", 273, {4, 3, 0xffff0000}, "the values of tag 273 lies past the end");
  damaged("float_offsets.tif", 273, {11, 1, 8}, "tag 273 has field type 11");
  damaged("no_rows.tif", 278, {4, 1, 0}, "RowsPerStrip is 0");
  damaged("rgb_of_one.tif", 262, {3, 1, 2}, "an RGB image of 1 samples per pixel");
  damaged("zero_samples.tif", 277, {3, 1, 0}, "SamplesPerPixel is 0");
  damaged("many_strips.tif", 278, {4, 1, 1}, "4 strips but 1 StripOffsets");
  expect_baseline_refuses(file("loop.tif", tiff_file(true, {{gray16()}, {gray8()}}, true)),
                          "corrupt or truncated TIFF (the chain of directories loops)");
  // Pages that share one strip: together more pixels than the file has bytes.
  const io::Array wide = make<std::uint8_t>(ipc::kUInt8, {100, 100}, [](std::size_t i) { return i; });
  TiffPage shared{make<std::uint8_t>(ipc::kUInt8, {1, 1}, [](std::size_t) { return 0; })};
  shared.tags[256] = shared.tags[257] = {4, 1, 100};
  shared.tags[273] = {4, 1, 8};  // the first page's strip
  shared.tags[279] = {4, 1, 10'000};
  expect_baseline_refuses(file("shared.tif", tiff_file(false, {{wide}, shared, shared})),
                          "100 x 100 pixels need more bytes than the file has (page 2)");

  // Without OpenCV read_frames says the same, before or after its own page
  // count (libtiff, with OpenCV, makes do with a short StripByteCounts).
  if (io::image_codecs_available()) return;
  expect_refused(dir_.file("short_count.tif"), Errc::invalid_argument, "corrupt or truncated");
  expect_refused(dir_.file("huge.tif"), Errc::invalid_argument, "corrupt or truncated");
}

TEST_F(BaselineTiff, UnsupportedTiffsSayWhatAndWhatToDo) {
  const auto unsupported = [&](const std::string& name, TiffPage page, const std::string& why) {
    expect_baseline_refuses(file(name, tiff_file(false, {page})), "': it is " + why + kConvert);
  };
  const auto with = [](io::Array pixels, std::map<std::uint16_t, TiffTag> tags, std::uint16_t photometric = 1) {
    TiffPage page{std::move(pixels), photometric};
    page.tags = std::move(tags);
    return page;
  };
  unsupported("lzw.tif", with(gray16(), {{259, {3, 1, 5}}}), "a TIFF compressed with LZW (Compression 5)");
#if !CPIPC_HAVE_ZLIB
  unsupported("deflate.tif", with(gray16(), {{259, {3, 1, 8}}}),
              "a TIFF compressed with Deflate (zlib) (Compression 8)");
#endif
  unsupported("packbits.tif", with(gray8(), {{259, {3, 1, 32773}}}),
              "a TIFF compressed with PackBits (Compression 32773)");
  unsupported("tiled.tif", with(gray16(), {{322, {3, 1, 16}}, {323, {3, 1, 16}}, {324, {4, 1, 8}}, {325, {4, 1, 24}}}),
              "a tiled TIFF");
  unsupported("planar.tif", with(rgb8(), {{284, {3, 1, 2}}}, 2),
              "a TIFF with separate colour planes (PlanarConfiguration 2)");
  unsupported("palette.tif", with(gray8(), {}, 3), "a palette-colour TIFF");
  unsupported("white_rgb.tif", with(rgb8(), {}, 0), "a WhiteIsZero TIFF of 3 samples per pixel");
  unsupported("cmyk.tif", with(make<std::uint8_t>(ipc::kUInt8, {2, 2, 4}, [](std::size_t i) { return i; }), {}, 5),
              "a CMYK (separated) TIFF");
  unsupported("bilevel.tif", with(gray8(), {{258, {3, 1, 1}}}), "a 1-bit TIFF");
  unsupported("twelve.tif", with(gray16(), {{258, {3, 1, 12}}}), "a TIFF of 12-bit integer samples");
  unsupported(
      "int64.tif",
      with(make<std::int64_t>(ipc::DType{ipc::DTypeCode::int_, 64, 1}, {2, 2}, [](std::size_t i) { return i; }), {}),
      "a TIFF of 64-bit integer samples");
  unsupported("void.tif", with(gray8(), {{339, {3, 1, 4}}}), "a TIFF of SampleFormat 4");
  unsupported("mixed.tif", with(rgb8(), {{258, {3, 3, 0}}}, 2), "a TIFF whose samples differ in bits");
  expect_baseline_refuses(file("bigtiff.tif", std::string("II+\0\x08\0\0\0\0\0\0\0\0\0\0\0", 16)),
                          "it is a BigTIFF" + std::string(kConvert));
  // The page is named when it is not the first.
  expect_baseline_refuses(file("page2.tif", tiff_file(true, {{gray8()}, with(gray16(), {{259, {3, 1, 5}}})})),
                          "it is a TIFF compressed with LZW (Compression 5) (page 2)");
}

TEST_F(BaselineTiff, WithoutImageCodecsReadFramesAndReadArrayUseIt) {
  if (io::image_codecs_available()) GTEST_SKIP() << "built with OpenCV: this checks a build without it";
  const std::string path = file("rgb.tif", tiff_file(true, {{rgb8(), 2}, {rgb8(), 2}}));
  const auto frames = io::read_frames(path);
  ASSERT_EQ(frames.size(), 2u);
  expect_same(frames[1], rgb8());
  expect_same(io::read_array(path), rgb8());
  expect_same(io::read_array(sample("cells_0.tif")), io::detail::read_baseline_tiff(sample("cells_0.tif"))[0]);
  TiffPage lzw{gray16()};
  lzw.tags[259] = {3, 1, 5};
  expect_refused(file("lzw.tif", tiff_file(false, {lzw})), Errc::invalid_argument,
                 "it is a TIFF compressed with LZW (Compression 5)" + std::string(kConvert));
  // Writing TIFF goes through libtiff, with or without OpenCV.
  io::write_array(dir_.file("out.tif"), gray16().view());
  const auto stored = io::detail::read_tiff(dir_.file("out.tif"));
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].data, gray16().data);
}

// ---- cpipc's own PNG writer (png_stored.cpp) ----

class StoredPngWriter : public ::testing::Test {
 protected:
  TempDir dir_;
};

// Writes `image` with the stored writer and checks the file structurally;
// where OpenCV is there, also that it reads back the same pixels.
void expect_png_round_trip(const std::string& path, const io::Array& image, int depth, int colour, int blocks = 1,
                           int chunks = 1) {
  io::detail::write_png_stored(path, image.view());
  const StoredPng png = decode_png_or_fail(path);
  EXPECT_EQ(png.width, image.desc.shape[1]);
  EXPECT_EQ(png.height, image.desc.shape[0]);
  EXPECT_EQ(png.bit_depth, depth);
  EXPECT_EQ(png.colour_type, colour);
  EXPECT_EQ(png.deflate_blocks, blocks);
  EXPECT_EQ(png.idat_chunks, chunks);
  EXPECT_TRUE(png.samples == png_samples(image)) << "the samples differ";
}

// Small images of every kind the writer takes.
std::vector<std::pair<std::string, io::Array>> png_images() {
  return {
      {"gray8", gray8()},
      {"gray8_1", make<std::uint8_t>(ipc::kUInt8, {6, 5, 1}, [](std::size_t i) { return i * 7; })},
      {"gray16", noise_u16(4, 9)},
      {"rgb8", rgb8()},
      {"rgba8", make<std::uint8_t>(ipc::kUInt8, {2, 3, 4}, [](std::size_t i) { return 250 - i; })},
      {"rgb16", make<std::uint16_t>(ipc::kUInt16, {2, 2, 3}, [](std::size_t i) { return 65535 - i * 4099; })},
      {"one", make<std::uint8_t>(ipc::kUInt8, {1, 1}, [](std::size_t) { return 42; })},
  };
}

TEST_F(StoredPngWriter, GrayRgbAndRgbaAreValidPngsOfTheSamePixels) {
  const std::map<std::string, std::pair<int, int>> format = {
      {"gray8", {8, 0}}, {"gray8_1", {8, 0}}, {"gray16", {16, 0}}, {"rgb8", {8, 2}},
      {"rgba8", {8, 6}}, {"rgb16", {16, 2}},  {"one", {8, 0}}};
  for (const auto& [name, image] : png_images()) {
    SCOPED_TRACE(name);
    expect_png_round_trip(dir_.file(name + ".png"), image, format.at(name).first, format.at(name).second);
  }
}

TEST_F(StoredPngWriter, OpenCvReadsTheSamePixelsBack) {
  SKIP_WITHOUT_IMAGE_CODECS();
  for (const auto& [name, image] : png_images()) {
    SCOPED_TRACE(name);
    io::detail::write_png_stored(dir_.file(name + ".png"), image.view());
    const io::Array back = io::read_array(dir_.file(name + ".png"));  // libpng, through the plugin
    EXPECT_EQ(back.data, image.data);
    EXPECT_EQ(back.desc.to_string(), name == "gray8_1" ? "uint8[6, 5]" : image.desc.to_string());
  }
  const io::Array large = noise_u16(1100, 500);
  io::detail::write_png_stored(dir_.file("large.png"), large.view());
  EXPECT_EQ(io::read_array(dir_.file("large.png")).data, large.data);
}

TEST_F(StoredPngWriter, LargeImagesSpanManyBlocksAndChunks) {
  // 1100 rows of 1 + 1000 bytes: 17 stored blocks of at most 65535 bytes, in
  // two IDAT chunks (the writer starts a new one after 1 MiB).
  expect_png_round_trip(dir_.file("large.png"), noise_u16(1100, 500), 16, 0, 17, 2);
  // Exactly one full block: 65535 = 255 rows of 1 + 256 bytes... 255 * 257.
  const auto exact = make<std::uint8_t>(ipc::kUInt8, {255, 256}, [](std::size_t i) { return i; });
  expect_png_round_trip(dir_.file("exact.png"), exact, 8, 0, 1, 1);
  const auto over = make<std::uint8_t>(ipc::kUInt8, {256, 256}, [](std::size_t i) { return i >> 8; });
  expect_png_round_trip(dir_.file("over.png"), over, 8, 0, 2, 1);
}

TEST_F(StoredPngWriter, WideLabelsAreNarrowedWhenTheyFitAsWithOpenCv) {
  const std::vector<std::uint32_t> values = {0, 1, 255, 256, 65534, 65535};
  const auto u32 = make<std::uint32_t>(ipc::kUInt32, {2, 3}, [&](std::size_t i) { return values[i]; });
  const auto i64 =
      make<std::int64_t>(ipc::DType{ipc::DTypeCode::int_, 64, 1}, {3, 2}, [&](std::size_t i) { return values[i]; });
  const auto i32 = make<std::int32_t>(ipc::kInt32, {2, 3}, [&](std::size_t i) { return values[i]; });
  for (const auto* image : {&u32, &i64, &i32}) {
    const std::string path = dir_.file("labels.png");
    io::detail::write_png_stored(path, image->view());
    const StoredPng png = decode_png_or_fail(path);
    EXPECT_EQ(png.bit_depth, 16);
    EXPECT_EQ(png.samples, big_endian_u16(values));
    if (io::image_codecs_available()) {
      // The plugin narrows the same labels to the same file content.
      io::write_array(dir_.file("opencv.png"), image->view());
      const io::Array back = io::read_array(dir_.file("opencv.png"));
      EXPECT_EQ(back.desc.dtype, ipc::kUInt16);
      EXPECT_EQ(png_samples(back), png.samples);
    }
  }
}

TEST_F(StoredPngWriter, OtherShapesAndDtypesAreRefusedInOneLine) {
  const auto refused = [&](const io::Array& image, const std::string& why, Errc code = Errc::invalid_argument,
                           std::string path = "") {
    if (path.empty()) path = dir_.file("x.png");
    try {
      io::detail::write_png_stored(path, image.view());
      ADD_FAILURE() << "no error for " << image.desc.to_string();
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_EQ(e.code(), code) << message;
      EXPECT_NE(message.find("'" + path + "'"), std::string::npos) << message;
      EXPECT_NE(message.find(why), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  };
  const std::string dtype = "a PNG holds 8- or 16-bit unsigned integers; save as .npy";
  refused(make<std::uint32_t>(ipc::kUInt32, {2, 2}, [](std::size_t i) { return 65535 + i; }), dtype);
  refused(make<std::int32_t>(ipc::kInt32, {2, 2}, [](std::size_t i) { return static_cast<int>(i) - 1; }), dtype);
  refused(make<float>(ipc::kFloat32, {2, 2}, [](std::size_t i) { return i; }), dtype);
  refused(make<std::int16_t>(ipc::DType{ipc::DTypeCode::int_, 16, 1}, {2, 2}, [](std::size_t i) { return i; }), dtype);
  refused(make<std::uint32_t>(ipc::kUInt32, {2, 2, 3}, [](std::size_t i) { return i; }), dtype);
  refused(make<std::uint8_t>(ipc::kUInt8, {2, 2, 2}, [](std::size_t i) { return i; }),
          "images are [H, W] or [H, W, 1|3|4]");
  refused(make<std::uint8_t>(ipc::kUInt8, {4}, [](std::size_t i) { return i; }), "images are [H, W]");
  refused(make<std::uint8_t>(ipc::kUInt8, {0, 3}, [](std::size_t i) { return i; }), "a PNG has at least one pixel");
  refused(gray8(), "cannot write", Errc::io, dir_.file("no-such-dir/x.png"));
}

// write_array's PNGs are libpng's in every build: compressed (no longer
// cpipc's stored-block PNG) and the same samples.
TEST(PngWriter, WithoutImageCodecsWriteArrayWritesACompressedPng) {
  if (io::image_codecs_available()) GTEST_SKIP() << "built with OpenCV: this checks a build without it";
  TempDir dir;
  const auto flat = make<std::uint16_t>(ipc::kUInt16, {64, 64}, [](std::size_t i) { return i / 1024; });
  io::write_array(dir.file("out.png"), flat.view());
  EXPECT_LT(read_file_bytes(dir.file("out.png")).size(), flat.data.size() / 10) << "not compressed";
  const io::Array back = io::detail::read_png(dir.file("out.png"));
  EXPECT_EQ(back.desc.to_string(), "uint16[64, 64]");
  EXPECT_EQ(back.data, flat.data);
}

}  // namespace

// --- Output files replace the old ones whole -------------------------------

namespace {

io::Array ramp(std::int64_t n, std::uint8_t first) {
  io::Array a;
  const std::int64_t shape[1] = {n};
  a.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  a.data.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) a.data[static_cast<std::size_t>(i)] = std::byte(first + i);
  return a;
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST(ReplaceFile, AWriteReplacesTheFileAndLeavesNothingElse) {
  cpipc::test::TempDir dir;
  const std::string path = dir.file("masks.npy");
  io::write_npy(path, ramp(100, 0).view());
  io::write_array(path, ramp(50, 7).view());
  io::write_array(dir.file("masks.bin"), ramp(10, 1).view());
  EXPECT_EQ(names_in(dir.path().string()), (std::vector<std::string>{"masks.bin", "masks.npy"}));
  EXPECT_EQ(io::read_npy(path).data, ramp(50, 7).data);
}

// A write that fails part-way (here the file size limit, as a full disk
// would) leaves the old file as it was and no temporary beside it.
TEST(ReplaceFile, AFailedWriteKeepsTheOldFile) {
  cpipc::test::TempDir dir;
  const std::string path = dir.file("masks.npy");
  io::write_npy(path, ramp(100, 0).view());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of killing
    const rlimit limit{64 * 1024, 64 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      io::write_npy(path, ramp(1 << 20, 3).view());
    } catch (const cpipc::Error& e) {
      const std::string what = e.what();
      ::_exit(e.code() == cpipc::Errc::io && what.find("'" + path + "'") != std::string::npos ? 0 : 2);
    }
    ::_exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the write did not fail; 2: not an io error naming the file";
  EXPECT_EQ(names_in(dir.path().string()), std::vector<std::string>{"masks.npy"});
  EXPECT_EQ(io::read_npy(path).data, ramp(100, 0).data);
}

TEST(ReplaceFile, ALinkStaysALink) {
  cpipc::test::TempDir dir;
  io::write_npy(dir.file("real.npy"), ramp(4, 0).view());
  fs::create_symlink(dir.file("real.npy"), dir.file("link.npy"));
  io::write_npy(dir.file("link.npy"), ramp(8, 1).view());
  EXPECT_TRUE(fs::is_symlink(dir.file("link.npy")));
  EXPECT_EQ(io::read_npy(dir.file("real.npy")).data, ramp(8, 1).data);
}
