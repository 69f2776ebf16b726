// io::probe_image (each format's header, never its pixels) and
// io::RegularFile / io::OutputFile, the one way io opens files.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/file.hpp"
#include "cpipc/io/labels.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/probe.hpp"
#include "support/test_support.hpp"
#include "support/tiff_builder.hpp"

namespace io = cpipc::io;
namespace ipc = cpipc::ipc;
using cpipc::Errc;
using cpipc::Error;
using cpipc::test::TempDir;

namespace {

io::Array zeros(ipc::DType dtype, std::vector<std::int64_t> shape) {
  io::Array a;
  a.desc = ipc::TensorDesc::contiguous(dtype, shape);
  a.data.assign(a.desc.nbytes(), std::byte{0});
  return a;
}

// probe_image agrees with what read_array decodes, for every format.
TEST(ProbeImage, ShapesAndTypesAreWhatTheReadersReturn) {
  TempDir dir;
  std::vector<std::pair<std::string, io::Array>> cases = {
      {"a.npy", zeros(ipc::kUInt16, {5, 7, 3})},
  };
  if (io::image_codecs_available()) {
    cases.emplace_back("g16.png", zeros(ipc::kUInt16, {9, 4}));
    cases.emplace_back("rgb8.png", zeros(ipc::kUInt8, {6, 5, 3}));
    cases.emplace_back("rgba8.png", zeros(ipc::kUInt8, {6, 5, 4}));
    cases.emplace_back("f32.tif", zeros(ipc::DType{ipc::DTypeCode::float_, 32, 1}, {8, 6}));
  }
  for (const auto& [name, array] : cases) {
    const std::string path = dir.file(name);
    io::write_array(path, array.view());
    const io::ImageInfo info = io::probe_image(path);
    const io::Array back = io::read_array(path);
    ASSERT_EQ(info.pages.size(), 1u) << name;
    const io::ImagePage& p = info.pages[0];
    EXPECT_EQ(p.height, static_cast<std::uint64_t>(back.desc.shape[0])) << name;
    EXPECT_EQ(p.width, static_cast<std::uint64_t>(back.desc.shape[1])) << name;
    EXPECT_EQ(p.channels, back.desc.ndim == 3 ? static_cast<std::uint64_t>(back.desc.shape[2]) : 1u) << name;
    EXPECT_EQ(p.dtype, back.desc.dtype) << name;
    EXPECT_EQ(info.bytes(), back.desc.nbytes()) << name;
  }
}

// JPEG and BMP headers put together by hand (write_array writes neither):
// the frame header after an APP0 segment, and a bottom-up BITMAPINFOHEADER.
TEST(ProbeImage, JpegFrameHeaderAndBmpInfoHeader) {
  TempDir dir;
  std::string jpeg("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 20);
  jpeg += std::string("\xff\xc2\x00\x11\x08\x01\x2c\x00\xc8\x03", 10) + std::string(9, '\0');  // 300 x 200
  std::ofstream(dir.file("p.jpg"), std::ios::binary) << jpeg;
  const io::ImageInfo j = io::probe_image(dir.file("p.jpg"));
  EXPECT_EQ(j.format, "JPEG");
  ASSERT_EQ(j.pages.size(), 1u);
  EXPECT_EQ(j.pages[0].height, 300u);
  EXPECT_EQ(j.pages[0].width, 200u);
  EXPECT_EQ(j.pages[0].channels, 3u);

  std::string bmp("BM", 2);
  bmp += std::string(12, '\0');
  const auto le32 = [&](std::int32_t v) {
    for (int s = 0; s < 32; s += 8) bmp += static_cast<char>(static_cast<std::uint32_t>(v) >> s);
  };
  le32(40);
  le32(70000);
  le32(-5);                                   // top-down
  bmp += std::string("\x01\x00\x18\x00", 4);  // 1 plane, 24 bits
  std::ofstream(dir.file("p.bmp"), std::ios::binary) << bmp;
  const io::ImageInfo b = io::probe_image(dir.file("p.bmp"));
  EXPECT_EQ(b.format, "BMP");
  ASSERT_EQ(b.pages.size(), 1u);
  EXPECT_EQ(b.pages[0].width, 70000u);
  EXPECT_EQ(b.pages[0].height, 5u);
  EXPECT_EQ(b.pages[0].bytes(), 70000u * 5 * 3);
}

TEST(ProbeImage, EveryPageOfATiff) {
  TempDir dir;
  const std::string path = dir.file("stack.tif");
  std::ofstream(path, std::ios::binary) << cpipc::test::tiff_file(
      true, {{zeros(ipc::kUInt16, {4, 3})}, {zeros(ipc::kUInt8, {2, 5, 8})}});
  const io::ImageInfo info = io::probe_image(path);
  EXPECT_EQ(info.format, "TIFF");
  ASSERT_EQ(info.pages.size(), 2u);
  EXPECT_EQ(info.pages[0].bytes(), 4u * 3 * 2);
  EXPECT_EQ(info.pages[1].channels, 8u);
  EXPECT_EQ(info.bytes(), 4u * 3 * 2 + 2 * 5 * 8);
}

TEST(ProbeImage, HugeDimensionsSaturateInsteadOfWrapping) {
  io::ImagePage p;
  p.height = p.width = std::uint64_t{1} << 32;
  p.channels = 65535;
  p.dtype = ipc::DType{ipc::DTypeCode::float_, 64, 1};
  EXPECT_EQ(p.bytes(), UINT64_MAX);
  EXPECT_EQ((io::ImageInfo{"TIFF", {p, p}}.bytes()), UINT64_MAX);
}

TEST(ProbeImage, RefusesWhatIsNotAnImage) {
  TempDir dir;
  std::ofstream(dir.file("text.png")) << "not pixels";
  std::ofstream(dir.file("empty.tif"));
  for (const auto& [name, why] : std::vector<std::pair<std::string, std::string>>{
           {"text.png", "not an image file"}, {"empty.tif", "the file is empty (0 bytes)"}}) {
    try {
      (void)io::probe_image(dir.file(name));
      ADD_FAILURE() << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW((void)io::probe_image(dir.file("absent.png")), Error);
}

TEST(RegularFile, ReadsAtOffsetsAndStopsAtTheEnd) {
  TempDir dir;
  std::ofstream(dir.file("f")) << "0123456789";
  const io::RegularFile f = io::RegularFile::open(dir.file("f"));
  EXPECT_EQ(f.size(), 10u);
  char buf[8] = {};
  EXPECT_EQ(f.read_at(6, buf, sizeof buf), 4u);
  EXPECT_EQ(std::string(buf, 4), "6789");
  try {
    (void)io::RegularFile::open(dir.path().string());
    ADD_FAILURE() << "a directory was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("it is a directory"), std::string::npos) << e.what();
  }
}

TEST(OutputFile, AnUnwritablePlaceSaysWhatToDo) {
  TempDir dir;
  try {
    io::OutputFile out(dir.file("none/x.bin"));
    ADD_FAILURE() << "created";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::io);
    EXPECT_NE(std::string(e.what()).find("No such file or directory; create the directory first"), std::string::npos)
        << e.what();
  }
}

// The one narrowing of label images: uint16 while every label fits.
TEST(NarrowLabels, Uint16BelowAndUint32From65536) {
  const std::vector<std::uint32_t> small = {0, 1, 65535, 7, 0, 3};
  const io::Array a = io::narrow_labels(small, 2, 3);
  EXPECT_EQ(a.desc.to_string(), "uint16[2, 3]");
  for (std::size_t i = 0; i < small.size(); ++i) EXPECT_EQ(a.view().as<std::uint16_t>()[i], small[i]);
  const std::vector<std::uint32_t> wide = {0, 65536, 2, 70000};
  const io::Array b = io::narrow_labels(wide, 2, 2);
  EXPECT_EQ(b.desc.to_string(), "uint32[2, 2]");
  EXPECT_EQ(std::memcmp(b.data.data(), wide.data(), b.data.size()), 0);
  EXPECT_THROW((void)io::narrow_labels(wide, 3, 2), Error);
  // A wide view narrows only when every value fits.
  EXPECT_FALSE(io::labels_as_uint16(b.view()));
  const io::Array c = io::narrow_labels(std::vector<std::uint32_t>(4, 9), 2, 2);
  EXPECT_FALSE(io::labels_as_uint16(c.view())) << "already uint16: nothing to narrow";
}

}  // namespace
