// Reading images to segment and saving Cellpose's outputs: read_frames,
// outline_polygons / write_outlines_txt (checked against Cellpose's own file,
// made by tools/io/make_outline_fixture.py in tests/data/io) and
// save_cellpose_outputs.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/frames.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/outlines.hpp"
#include "cpipc/io/outputs.hpp"
#include "support/test_support.hpp"

namespace io = cpipc::io;
namespace ipc = cpipc::ipc;
namespace fs = std::filesystem;
using cpipc::Errc;
using cpipc::Error;
using cpipc::test::read_file_bytes;
using cpipc::test::TempDir;

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

TEST_F(ReadFrames, AMultiPageTiffGivesOneFramePerPage) {
  SKIP_WITHOUT_IMAGE_CODECS();
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
  truncate_copy(data_dir() + "/stack3.tif", dir_.file("stack_half.tif"), 0.6);  // tifffile: directories first
  expect_refused(dir_.file("half.tif"), Errc::invalid_argument, "corrupt or truncated");
  expect_refused(dir_.file("stack_half.tif"), Errc::invalid_argument, "corrupt or truncated");
}

TEST_F(ReadFrames, WithoutImageCodecsAPngNamesTheFix) {
  if (io::image_codecs_available()) GTEST_SKIP() << "built with OpenCV: this checks a build without it";
  io::write_npy(dir_.file("x.npy"), noise_u16(2, 2).view());
  write_bytes(dir_.file("x.png"), std::string("\x89PNG\r\n\x1a\n", 8) + "rest");
  expect_refused(dir_.file("x.png"), Errc::invalid_argument,
                 "image codecs are unavailable (this cpipc was built without OpenCV); rebuild it with OpenCV");
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
  SKIP_WITHOUT_IMAGE_CODECS();
  const Labels l = fixture_labels();
  TempDir dir;
  io::write_outlines_txt(dir.file("out.txt"), io::outline_polygons(l.data.data(), l.height, l.width, l.count));
  const auto ours = read_file_bytes(dir.file("out.txt"));
  const auto cellposes = read_file_bytes(data_dir() + "/outlines_cp_outlines.txt");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ours.data()), ours.size()),
            std::string(reinterpret_cast<const char*>(cellposes.data()), cellposes.size()));
}

TEST(Outlines, OneEntryPerLabelPresentSmallMasksEmpty) {
  SKIP_WITHOUT_IMAGE_CODECS();
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
  SKIP_WITHOUT_IMAGE_CODECS();
  const Labels l = fixture_labels();
  const io::Array labels = labels_array(l);
  TempDir dir;
  const std::string out = dir.file("new/nested");
  const auto written = io::save_cellpose_outputs(out, "cells", labels.view(), l.count, true);
  ASSERT_EQ(written, (std::vector<std::string>{out + "/cells_cp_masks.png", out + "/cells_cp_outlines.txt"}));
  const io::Array back = io::read_array(written[0]);
  EXPECT_EQ(back.desc.to_string(), "uint16[40, 48]") << "16 bits, as Cellpose's astype(np.uint16)";
  EXPECT_EQ(io::to_labels(back, "masks"), l.data);
  EXPECT_EQ(read_file_bytes(written[1]), read_file_bytes(data_dir() + "/outlines_cp_outlines.txt"));
}

TEST(Outputs, AnImageWithNoMasksStillGetsItsFiles) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const auto zeros = make<std::uint16_t>(ipc::kUInt16, {3, 3}, [](std::size_t) { return 0; });
  TempDir dir;
  const auto written = io::save_cellpose_outputs(dir.path().string(), "blank", zeros.view(), 0, true);
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(io::read_array(written[0]).data.size(), 9u * 2);
  EXPECT_TRUE(read_file_bytes(written[1]).empty());
}

TEST(Outputs, From65536MasksTheMasksAreAUint32Tiff) {
  // 256 x 257 pixels, each its own mask: labels 1..65792.
  const auto labels = make<std::uint32_t>(ipc::kUInt32, {256, 257}, [](std::size_t i) { return i + 1; });
  TempDir dir;
  const auto written = io::save_cellpose_outputs(dir.path().string(), "many", labels.view(), 256 * 257, false);
  ASSERT_EQ(written, std::vector<std::string>{dir.file("many_cp_masks.tif")});
  const auto bytes = read_file_bytes(written[0]);
  ASSERT_EQ(bytes.size(), 160u + 256 * 257 * 4);
  EXPECT_EQ(std::memcmp(bytes.data(), "II*\0", 4), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 160, labels.data.data(), labels.data.size()), 0);
  // OpenCV 4 has no uint32 and cannot read these (nor Cellpose's): a clear refusal.
  if (io::image_codecs_available()) {
    expect_refused(written[0], Errc::invalid_argument, "OpenCV 4 reads no 32- or 64-bit unsigned integer TIFF");
  }
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

TEST(Outputs, WithoutImageCodecsPngAndOutlinesNameTheFix) {
  if (io::image_codecs_available()) GTEST_SKIP() << "built with OpenCV: this checks a build without it";
  const Labels l = fixture_labels();
  const io::Array labels = labels_array(l);
  TempDir dir;
  for (const bool outlines : {true, false}) {
    try {
      (void)io::save_cellpose_outputs(dir.path().string(), "x", labels.view(), l.count, outlines);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("rebuild it with OpenCV"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
