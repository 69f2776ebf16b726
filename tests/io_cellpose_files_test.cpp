// Cellpose's files that cpipc writes with encoders of its own: ImageJ .roi
// files (byte for byte roifile's, the bytes below were made by roifile
// 2026.2.10's ImagejRoi.frompoints(points, name=...).tobytes()), their ZIP
// archive, and the pickle inside a _seg.npy (byte for byte what the opcodes
// in Lib/pickletools.py spell). tests/cellpose_files_check.py loads the real
// files with numpy, roifile and Cellpose.
#include <gtest/gtest.h>
#include <zip.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "../src/io/pickle_writer.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/imagej_rois.hpp"
#include "cpipc/io/outputs.hpp"
#include "cpipc/io/seg_npy.hpp"
#include "cpipc/post/flow_picture.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string pickle(const std::function<void(io::detail::PickleWriter&)>& put) {
  std::string out;
  io::detail::PickleWriter p([&out](const char* data, std::size_t n) { out.append(data, n); });
  put(p);
  p.finish();
  return out;
}

std::string le32(std::uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

TEST(ImagejRoi, ASmallPolygonIsRoifilesBytes) {
  const io::Polygon points{{3, 1}, {2, 2}, {3, 3}, {4, 2}};
  EXPECT_EQ(io::encode_imagej_roi(points, "ab"),
            from_hex("496f757400e5070000010002000400050004000000000000000000000000000000000000000000000000000000000000"
                     "000000280000000000000000000000500001000000010002000000010002000100000000000000000000000000000000"
                     "000000900000000200000000000000000000000000000000000000000000000000000000000000000000000000000000"
                     "00610062"));
}

TEST(ImagejRoi, CoordinatesAbove60535AlsoGoInAsFloats) {
  const io::Polygon points{{60536, 5}, {60537, 6}, {60536, 7}};
  EXPECT_EQ(
      io::encode_imagej_roi(points, "x"),
      from_hex("496f757400e507000005ec780008ec7a0003000000000000000000000000000000000000000000000000000000000000"
               "000000a8000000000000000000000064000000010000000000010002476c7800476c7900476c780040a0000040c00000"
               "40e0000000000000000000000000000000000000000000a400000001000000000000000000000000000000000000000000"
               "000000000000000000000000000000000000000078"));
}

TEST(ImagejRoi, NoPointsOrANonAsciiNameIsRefused) {
  EXPECT_THROW((void)io::encode_imagej_roi({}, "a"), Error);
  EXPECT_THROW((void)io::encode_imagej_roi({{1, 1}}, "\xc3\xa9"), Error);
}

TEST(ImagejRoi, NamesAreFreshVersion1Uuids) {
  const std::regex uuid1("[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> names;
  for (int i = 0; i < 100; ++i) {
    const std::string name = io::roi_name();
    EXPECT_TRUE(std::regex_match(name, uuid1)) << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), 100u);
}

TEST(ImagejRoi, TheArchiveHoldsOneStoredRoiPerNonEmptyPolygonInOrder) {
  test::TempDir dir;
  const std::vector<io::Polygon> polygons{{{3, 1}, {2, 2}, {3, 3}, {4, 2}}, {}, {{10, 10}, {11, 10}, {11, 11}}};
  const std::string path = dir.file("cells_rois.zip");
  io::write_imagej_rois(path, polygons);

  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &code);
  ASSERT_NE(z, nullptr) << code;
  ASSERT_EQ(zip_get_num_entries(z, 0), 2);
  const io::Polygon* expected[] = {&polygons[0], &polygons[2]};
  for (zip_uint64_t i = 0; i < 2; ++i) {
    zip_stat_t st;
    ASSERT_EQ(zip_stat_index(z, i, 0, &st), 0);
    const std::string name = st.name;
    ASSERT_EQ(name.size(), 36u + 4u);
    EXPECT_EQ(name.substr(36), ".roi");
    EXPECT_EQ(st.comp_method, ZIP_CM_STORE);
    std::string data(st.size, '\0');
    zip_file_t* f = zip_fopen_index(z, i, 0);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(zip_fread(f, data.data(), data.size()), static_cast<zip_int64_t>(data.size()));
    zip_fclose(f);
    EXPECT_EQ(data, io::encode_imagej_roi(*expected[i], name.substr(0, 36)));
  }
  zip_discard(z);
}

TEST(ImagejRoi, NoMasksGiveAnEmptyArchiveAsPythonsZipfile) {
  test::TempDir dir;
  const std::string path = dir.file("none_rois.zip");
  io::write_imagej_rois(path, {{}, {}});
  EXPECT_EQ(read_file(path), std::string("PK\x05\x06", 4) + std::string(18, '\0'));
}

TEST(PickleWriter, ScalarsUseTheShortestOfPythonsOpcodes) {
  const std::string got = pickle([](auto& p) {
    p.integer(7);
    p.integer(300);
    p.integer(-1);
    p.integer(std::int64_t{1} << 40);
    p.real(30.0);
    p.string("ab");
    p.none();
    p.boolean(true);
    p.boolean(false);
  });
  const std::string expected = std::string("\x80\x04", 2) + "K\x07" + std::string("M\x2c\x01", 3) +
                               "J\xff\xff\xff\xff" + std::string("\x8a\x08\0\0\0\0\0\x01\0\0", 10) +
                               std::string("G\x40\x3e\0\0\0\0\0\0", 9) + "X" + le32(2) + "ab" + "N\x88\x89.";
  EXPECT_EQ(got, expected);
}

TEST(PickleWriter, AUint16ArrayIsWhatNdarrayReduceSays) {
  const std::uint16_t data[6] = {0, 1, 2, 3, 4, 5};
  const std::int64_t shape[2] = {2, 3};
  const ipc::HostView v{reinterpret_cast<const std::byte*>(data), ipc::TensorDesc::contiguous(ipc::kUInt16, shape)};
  const std::string got = pickle([&](auto& p) { p.numpy_array(v); });
  const std::string expected =
      std::string("\x80\x04", 2) + "cnumpy.core.multiarray\n_reconstruct\n" + "cnumpy\nndarray\n" +
      std::string("K\0\x85", 3) + "B" + le32(1) + "b" + "\x87R" +   // _reconstruct(ndarray, (0,), b'b')
      "(K\x01" + "K\x02K\x03\x86" +                                 // (1, (2, 3),
      "cnumpy\ndtype\n" + "X" + le32(2) + "u2" + "\x89\x88\x87R" +  //  dtype('u2', False, True)
      "(K\x03X" + le32(1) + "<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + std::string("K\0tb", 4) + "\x89" + "B" +
      le32(12) + std::string(reinterpret_cast<const char*>(data), 12) +  //  False, data)
      "tb.";
  EXPECT_EQ(got, expected);
}

TEST(PickleWriter, ADictInAZeroDimensionalObjectArrayIsWhatNpSaveWrites) {
  const std::string got = pickle([](auto& p) {
    p.numpy_object_scalar([&p] {
      p.empty_dict();
      p.mark();
      p.string("d");
      p.real(1.5);
      p.setitems();
    });
  });
  const std::string expected = std::string("\x80\x04", 2) + "cnumpy.core.multiarray\n_reconstruct\n" +
                               "cnumpy\nndarray\n" + std::string("K\0\x85", 3) + "B" + le32(1) + "b" + "\x87R" +
                               "(K\x01)" + "cnumpy\ndtype\n" + "X" + le32(2) + "O8" + "\x89\x88\x87R" + "(K\x03X" +
                               le32(1) + "|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb" + "\x89](" + "}(X" + le32(1) +
                               "d" + std::string("G\x3f\xf8\0\0\0\0\0\0", 9) + "u" + "etb.";
  EXPECT_EQ(got, expected);
}

TEST(PickleWriter, LargeArrayDataGoesToTheSinkInOnePiece) {
  std::vector<float> big(100000, 1.0f);
  const std::int64_t shape[1] = {100000};
  std::vector<std::size_t> pieces;
  io::detail::PickleWriter p([&pieces](const char*, std::size_t n) { pieces.push_back(n); });
  p.numpy_array({reinterpret_cast<const std::byte*>(big.data()), ipc::TensorDesc::contiguous(ipc::kFloat32, shape)});
  p.finish();
  EXPECT_NE(std::find(pieces.begin(), pieces.end(), big.size() * 4), pieces.end());
}

TEST(PickleWriter, TypesNumpyHasNoDtypeForAreRefused) {
  const std::int64_t shape[1] = {1};
  const std::uint16_t x = 0;
  io::detail::PickleWriter p([](const char*, std::size_t) {});
  EXPECT_THROW(p.numpy_array({reinterpret_cast<const std::byte*>(&x),
                              ipc::TensorDesc::contiguous({ipc::DTypeCode::bfloat, 16, 1}, shape)}),
               Error);
}

TEST(SegNpy, TheFileIsANpyOfOneObjectWithNumpysHeader) {
  test::TempDir dir;
  const std::uint32_t labels[4] = {0, 1, 1, 0};
  const float flows[12] = {};
  io::SegNpyContent c;
  c.labels = labels;
  c.height = 2;
  c.width = 2;
  c.flows = flows;
  c.filename = "cells.tif";
  c.diameter = 30.0;
  const std::string path = dir.file("cells_seg.npy");
  io::write_seg_npy(path, c);
  const std::string file = read_file(path);
  const std::string dict = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
  ASSERT_GT(file.size(), 128u);
  EXPECT_EQ(file.substr(0, 10), std::string("\x93NUMPY\x01\x00\x76\x00", 10));  // header of 118 bytes
  EXPECT_EQ(file.substr(10, dict.size()), dict);
  EXPECT_EQ(file.substr(10 + dict.size(), 118 - dict.size()), std::string(117 - dict.size(), ' ') + "\n");
  EXPECT_EQ(file.substr(128, 2), "\x80\x04");
  EXPECT_EQ(file.back(), '.');
}

TEST(SegNpy, AFileNameThatIsNotUtf8IsKeptAsPythonsSurrogates) {
  test::TempDir dir;
  const std::uint32_t labels[1] = {0};
  const float flows[3] = {};
  io::SegNpyContent c;
  c.labels = labels;
  c.height = 1;
  c.width = 1;
  c.flows = flows;
  c.filename = "caf\xc3\xa9-\xff.tif";  // "café-" in UTF-8, then a Latin-1 byte
  const std::string path = dir.file("x_seg.npy");
  io::write_seg_npy(path, c);
  const std::string expected = "caf\xc3\xa9-\xed\xb3\xbf.tif";  // os.fsdecode: U+DCFF, pickled 'surrogatepass'
  EXPECT_NE(read_file(path).find("X" + le32(static_cast<std::uint32_t>(expected.size())) + expected),
            std::string::npos);
}

TEST(SegNpy, MissingFlowsAreRefused) {
  test::TempDir dir;
  const std::uint32_t labels[1] = {1};
  io::SegNpyContent c;
  c.labels = labels;
  c.height = 1;
  c.width = 1;
  EXPECT_THROW(io::write_seg_npy(dir.file("x_seg.npy"), c), Error);
}

TEST(FlowPicture, AFieldOfOneLengthIsBlackAsNormalize99MakesIt) {
  const std::vector<float> dy(50, 1.0f), dx(50, 0.0f);
  const std::vector<std::uint8_t> rgb = post::flow_picture(dy.data(), dx.data(), dy.size());
  EXPECT_EQ(rgb, std::vector<std::uint8_t>(150, 0));
}

TEST(FlowPicture, CellProbabilityIsScaledToThePercentiles) {
  std::vector<float> v(101);
  for (int i = 0; i <= 100; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
  const std::vector<std::uint8_t> u = post::normalized_u8(v.data(), v.size());
  EXPECT_EQ(u[0], 0);     // below the 1st percentile: clipped
  EXPECT_EQ(u[1], 0);     // the 1st percentile
  EXPECT_EQ(u[50], 127);  // 49/98 of 255, truncated
  EXPECT_EQ(u[99], 255);
  EXPECT_EQ(u[100], 255);
}

TEST(CellposeFiles, TifAloneReplacesThePngAndBothWriteBoth) {
  test::TempDir dir;
  const std::uint32_t labels[4] = {0, 1, 1, 0};
  const std::int64_t shape[2] = {2, 2};
  const ipc::HostView v{reinterpret_cast<const std::byte*>(labels), ipc::TensorDesc::contiguous(ipc::kUInt32, shape)};
  io::CellposeFiles files;
  files.png = false;
  files.tif = true;
  files.outlines_txt = false;
  io::SavedFiles s = io::save_cellpose_files(dir.file("a"), "x", v, 1, files, {});
  EXPECT_TRUE(s.masks_png.empty());
  EXPECT_EQ(s.masks(), dir.file("a") + "/x_cp_masks.tif");
  EXPECT_TRUE(std::filesystem::exists(s.masks_tif));
  files.png = true;
  s = io::save_cellpose_files(dir.file("b"), "x", v, 1, files, {});
  EXPECT_TRUE(std::filesystem::exists(s.masks_png));
  EXPECT_TRUE(std::filesystem::exists(s.masks_tif));
}

}  // namespace
}  // namespace cpipc
