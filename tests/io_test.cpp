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
#include "support/test_support.hpp"
#include "support/tiff_builder.hpp"
// The fallback codecs themselves, called directly so that they are tested
// in a build with OpenCV too (they are cpipc_io internals, not public API).
#include "../src/io/png_codec.hpp"
#include "../src/io/tiff_reader.hpp"

namespace io = cpipc::io;
namespace ipc = cpipc::ipc;
namespace fs = std::filesystem;
using cpipc::Errc;
using cpipc::Error;
using cpipc::test::read_file_bytes;
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

// Written by tifffile (make_outline_fixture.py) with {"shape": [3, 6, 5]}:
// no axes named, so Cellpose 4's guess (3 < 5: channels first) makes the
// three pages one 3-channel image; --z-axis 0 makes them a z-stack.
// Page k = 1000 k + 10 row + column.
TEST_F(ReadFrames, AMultiPageTiffWithoutAxesIsDecidedAsCellposeDoes) {
  const io::ImageFile f = io::read_image_file(data_dir() + "/stack3.tif");
  ASSERT_EQ(f.frames.size(), 1u);
  EXPECT_EQ(f.frames[0].axes, "YXC");
  EXPECT_EQ(f.decided_by, "guessed as Cellpose 4 does");
  ASSERT_EQ(f.frames[0].array.desc.to_string(), "uint16[6, 5, 3]");
  const auto* p = reinterpret_cast<const std::uint16_t*>(f.frames[0].array.data.data());
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 5; ++c) {
      for (int k = 0; k < 3; ++k) EXPECT_EQ(p[(r * 5 + c) * 3 + k], 1000 * k + 10 * r + c) << k << " " << r << " " << c;
    }
  }
  io::AxisOptions z;
  z.z_axis = 0;
  const io::ImageFile stack = io::read_image_file(data_dir() + "/stack3.tif", z);
  EXPECT_EQ(stack.frames.at(0).axes, "ZYX");
  EXPECT_EQ(stack.frames.at(0).array.desc.to_string(), "uint16[3, 6, 5]");
  EXPECT_EQ(stack.decided_by, "--z-axis");
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
  const auto channels = make<std::uint16_t>(ipc::kUInt16, {50, 60, 8}, [](std::size_t i) { return i; });
  io::write_npy(dir_.file("gray.npy"), gray.view());
  io::write_npy(dir_.file("eight.npy"), channels.view());
  const auto g = io::read_frames(dir_.file("gray.npy"));
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].desc.to_string(), "float32[5, 6]");
  EXPECT_EQ(g[0].data, gray.data);
  const auto c = io::read_frames(dir_.file("eight.npy"));
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].desc.to_string(), "uint16[50, 60, 8]");
  EXPECT_EQ(c[0].data, channels.data);
}

TEST_F(ReadFrames, ABoolNpyIsReadAsUint8) {
  write_raw_npy(dir_.file("b.npy"), "|b1", "2, 3", 6);
  const auto frames = io::read_frames(dir_.file("b.npy"));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].desc.to_string(), "uint8[2, 3]");
}

// A .npy names no axes: Cellpose 4's guess, or the axes the user names.
TEST_F(ReadFrames, ANpyOfThreeOrFourAxesIsArrangedAsCellposeGuesses) {
  const auto first = make<std::uint16_t>(ipc::kUInt16, {5, 16, 16}, [](std::size_t i) { return i; });
  io::write_npy(dir_.file("first.npy"), first.view());
  io::ImageFile f = io::read_image_file(dir_.file("first.npy"));
  EXPECT_EQ(f.frames.at(0).axes, "YXC");
  EXPECT_EQ(f.frames.at(0).array.desc.to_string(), "uint16[16, 16, 5]");
  io::AxisOptions z;
  z.z_axis = 0;
  f = io::read_image_file(dir_.file("first.npy"), z);
  EXPECT_EQ(f.frames.at(0).axes, "ZYX");
  EXPECT_EQ(f.frames.at(0).array.data, first.data);
  write_raw_npy(dir_.file("zcyx.npy"), "<f4", "4, 2, 8, 9", 4 * 2 * 8 * 9 * 4);
  f = io::read_image_file(dir_.file("zcyx.npy"));
  EXPECT_EQ(f.frames.at(0).axes, "ZYXC");
  EXPECT_EQ(f.frames.at(0).array.desc.to_string(), "float32[4, 8, 9, 2]");
}

TEST_F(ReadFrames, NpyOfTheWrongRankIsRefused) {
  write_raw_npy(dir_.file("1d.npy"), "<f4", "16,", 64);
  write_raw_npy(dir_.file("5d.npy"), "<f4", "1, 1, 2, 2, 1", 16);
  expect_refused(dir_.file("1d.npy"), Errc::invalid_argument, "fewer than two image axes");
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

// PNG is libpng's in every build, with or without the OpenCV plugin
// (cpipc_io_tests_without_image_codecs runs this again with CPIPC_CODECS=none).
TEST_F(ReadFrames, WithoutImageCodecsAPngIsReadThroughLibpng) {
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

// JPEG and BMP need the OpenCV plugin: without it (here CPIPC_CODECS=none,
// in cpipc_io_tests_without_image_codecs) one line says so and how to fix it.
TEST_F(ReadFrames, WithoutImageCodecsAJpegNamesTheFix) {
  if (io::image_codecs_available()) {
    GTEST_SKIP() << "the OpenCV plugin is there; cpipc_io_tests_without_image_codecs runs this without it";
  }
  write_bytes(dir_.file("x.jpg"), std::string("\xff\xd8\xff\xe0\x00\x10JFIF\x00", 11) + std::string(64, '\0'));
  expect_refused(dir_.file("x.jpg"), Errc::invalid_argument, "JPEG and BMP need the OpenCV codec plugin");
  expect_refused(dir_.file("x.jpg"), Errc::invalid_argument, "convert the file to PNG, TIFF or .npy");
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

// ---- Damaged TIFFs made by hand: libtiff refuses them in one line ----

// read_image_file(path) fails with `code`, one line naming the file. `why`
// says what is wrong with the file (libtiff's words differ).
void expect_tiff_refused(const std::string& path, const std::string& why, Errc code = Errc::invalid_argument) {
  try {
    (void)io::read_image_file(path);
    ADD_FAILURE() << "read_image_file('" << path << "') did not throw; expected a refusal: " << why;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.code(), code) << why << ": " << message;
    EXPECT_NE(message.find("'" + path + "'"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

io::Array gray8() {
  return make<std::uint8_t>(ipc::kUInt8, {5, 7}, [](std::size_t i) { return i * 37 + 3; });
}
io::Array gray16() {
  return make<std::uint16_t>(ipc::kUInt16, {4, 3}, [](std::size_t i) { return (i * 2654435761u) >> 9 & 0xffff; });
}
class DamagedTiff : public ::testing::Test {
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
TEST_F(DamagedTiff, ReadFramesRefusesALoopingChainAtOnce) {
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

TEST_F(DamagedTiff, DamagedFilesGiveOneLineNotACrash) {
  const std::string good = tiff_file(false, {{gray16()}});
  expect_tiff_refused(file("empty.tif", ""), "corrupt or truncated TIFF (no header)");
  expect_tiff_refused(file("header.tif", good.substr(0, 5)), "corrupt or truncated TIFF (no header)");
  expect_tiff_refused(file("no_ifd.tif", good.substr(0, 20)),
                      "corrupt or truncated TIFF (directory 1 lies past the end of the file)");
  expect_tiff_refused(file("cut_ifd.tif", good.substr(0, good.size() - 10)), "directory 1 lies past the end");
  expect_tiff_refused(file("entries.tif", std::string("II*\0\x08\0\0\0\xff\xff", 10)), "directory 1 lies past the end");
  expect_tiff_refused(file("not.tif", "GIF89a, not a TIFF"), "not a TIFF file");
  expect_tiff_refused(file("not42.tif", std::string("II\x07\0\x08\0\0\0", 8)), "not a TIFF file");
  expect_tiff_refused(dir_.file("absent.tif"), "no file", Errc::not_found);
  expect_tiff_refused(dir_.path().string(), "it is a directory");

  // A two-page file whose second page is cut in its pixels.
  const std::string two = tiff_file(false, {{gray16()}, {gray8()}});
  TiffPage page2_past_end{gray8()};
  page2_past_end.tags[273] = {4, 1, static_cast<std::uint32_t>(two.size()) - 10};
  expect_tiff_refused(file("page2.tif", tiff_file(false, {{gray16()}, page2_past_end})),
                      "strip 1 (page 2) lies past the end of the file");

  const auto damaged = [&](const std::string& name, std::uint16_t tag, TiffTag value, const std::string& why,
                           bool big = false) {
    TiffPage page{gray16()};
    page.tags[tag] = value;
    expect_tiff_refused(file(name, tiff_file(big, {page})), why);
  };
  damaged("offset.tif", 273, {4, 1, 1'000'000}, "corrupt or truncated TIFF (strip 1 lies past the end of the file)");
  damaged("offset_wraps.tif", 273, {4, 1, 0xfffffff0}, "strip 1 lies past the end of the file", true);
  damaged("huge.tif", 256, {4, 1, 100'000}, "100000 x 4 pixels need more bytes than the file has");
  damaged("hostile_count.tif", 273, {4, 0x40000000, 8}, "tag 273 has more values than the file has bytes");
  damaged("values_past_end.tif", 273, {4, 3, 0xffff0000}, "the values of tag 273 lies past the end");
  damaged("float_offsets.tif", 273, {11, 1, 8}, "tag 273 has field type 11");
  damaged("no_rows.tif", 278, {4, 1, 0}, "RowsPerStrip is 0");
  damaged("many_strips.tif", 278, {4, 1, 1}, "4 strips but 1 StripOffsets");
  damaged("zero_samples.tif", 277, {3, 1, 0}, "SamplesPerPixel is 0");
  expect_tiff_refused(file("loop.tif", tiff_file(true, {{gray16()}, {gray8()}}, true)),
                      "corrupt or truncated TIFF (the chain of directories loops)");
  // What libtiff repairs from what the file proves (a StripByteCounts too
  // short, RGB said of one sample) is read as the pixels the file holds,
  // exactly; a page whose strips are not all there is refused.
  const auto repaired = [&](const std::string& name, const std::string& bytes, const io::Array& want, int frame) {
    const io::ImageFile f = io::read_image_file(file(name, bytes));
    ASSERT_GT(f.frames.size(), static_cast<std::size_t>(frame)) << name;
    EXPECT_EQ(f.frames[frame].array.desc.to_string(), want.desc.to_string()) << name;
    EXPECT_TRUE(f.frames[frame].array.data == want.data) << name << ": not the stored pixels";
  };
  const auto with_tag = [](io::Array pixels, std::uint16_t tag, TiffTag value) {
    TiffPage page{std::move(pixels)};
    page.tags[tag] = value;
    return page;
  };
  repaired("short_count.tif", tiff_file(false, {with_tag(gray16(), 279, {4, 1, 5})}), gray16(), 0);
  repaired("rgb_of_one.tif", tiff_file(false, {with_tag(gray16(), 262, {3, 1, 2})}), gray16(), 0);
  const io::Array wide = make<std::uint8_t>(ipc::kUInt8, {100, 100}, [](std::size_t i) { return i; });
  TiffPage shared{make<std::uint8_t>(ipc::kUInt8, {1, 1}, [](std::size_t) { return 0; })};
  shared.tags[256] = shared.tags[257] = {4, 1, 100};
  shared.tags[273] = {4, 1, 8};  // the first page's strip
  shared.tags[279] = {4, 1, 10'000};
  // (its RowsPerStrip, 1, says 100 strips: libtiff would read 99 from offset 0)
  expect_tiff_refused(file("shared.tif", tiff_file(false, {{wide}, shared, shared})), "strip or tile 2 has no offset");
}

// write_array's PNGs are libpng's in every build: compressed (no longer
// cpipc's stored-block PNG) and the same samples.
TEST(PngWriter, WithoutImageCodecsWriteArrayWritesACompressedPng) {
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
