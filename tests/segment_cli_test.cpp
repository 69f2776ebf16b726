// `cpipc segment` as users run it: the real binary (which executes
// cpipc-torch) on real files, outputs read back; bad input of every kind
// ends in one line and the documented exit status.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/io/tiff.hpp"
#include "support/masks_png.hpp"
#include "support/metrics.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using test::CommandResult;
using test::expect_failure;
using test::run_cpipc;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kFixtures = CPIPC_SOURCE_DIR "/tests/data/model";

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A .npy whose header describes `shape` of uint16 and whose data is a hole:
// the file claims the size without taking the disk.
void write_sparse_npy(const std::string& path, std::int64_t h, std::int64_t w) {
  std::string header =
      "{'descr': '<u2', 'fortran_order': False, 'shape': (" + std::to_string(h) + ", " + std::to_string(w) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string file = "\x93NUMPY\x01";
  file += '\0';
  file += static_cast<char>(header.size() & 0xff);
  file += static_cast<char>(header.size() >> 8);
  file += header;
  write_bytes(path, file);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(file.size() + 2 * h * w)), 0);
}

class Segment : public ::testing::Test {
 protected:
  CommandResult segment(std::vector<std::string> args) {
    args.insert(args.begin(), "segment");
    args.insert(args.end(), {"-o", dir_.file("out"), "--device", "cpu"});
    return run_cpipc(args, 120s);
  }
  test::TempDir dir_;
};

TEST_F(Segment, WritesCellposeOutputsThatAgreeWithCellpose) {
  // The parity fixture gray16_up: Cellpose 3.1.1.2's masks with diameter 20.
  const CommandResult r = segment({kFixtures + "/gray16_up/image.npy", "--diameter", "20", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  const nlohmann::json& j = lines[0];
  EXPECT_EQ(j["masks"], dir_.file("out/image_cp_masks.png"));
  EXPECT_EQ(j["outlines"], dir_.file("out/image_cp_outlines.txt"));
  EXPECT_EQ(j["shape"], nlohmann::json({250, 333}));
  EXPECT_FLOAT_EQ(j["rescale"].get<float>(), 1.5f);
  EXPECT_EQ(j["niter"], 133);

  // A uint16 PNG: OpenCV's where the build has it, else cpipc's stored one.
  const std::vector<std::uint32_t> ours = test::read_masks_png(j["masks"]);
  const std::vector<std::uint32_t> cellpose = io::to_labels(io::read_npy(kFixtures + "/gray16_up/masks.npy"), "ref");
  ASSERT_EQ(ours.size(), cellpose.size());
  EXPECT_EQ(*std::max_element(ours.begin(), ours.end()), j["objects"].get<std::uint32_t>());
  EXPECT_GE(test::ap50(cellpose, ours), 0.98);

  // One outline per mask.
  std::ifstream outlines(j["outlines"].get<std::string>());
  std::size_t n = 0;
  for (std::string line; std::getline(outlines, line);) ++n;
  EXPECT_EQ(n, j["objects"].get<std::size_t>());
}

TEST_F(Segment, DiameterZeroIsEstimatedAndSaysSoAFixedOneDoesNot) {
  // Cellpose 3.1.1.2's Cellpose.eval(diameter=0) on this image: tests/data/size.
  const std::string image = CPIPC_SOURCE_DIR "/tests/data/size/mid_cells/image.npy";
  std::ifstream in(CPIPC_SOURCE_DIR "/tests/data/size/mid_cells/case.json");
  const double cellpose = nlohmann::json::parse(in)["diameter"].get<double>();
  const CommandResult est = segment({image, "--diameter", "0", "--json"});
  ASSERT_EQ(est.status, 0) << est.err;
  const auto lines = json_lines(est.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["diameter_estimated"], true);
  EXPECT_NEAR(lines[0]["diameter"].get<double>(), cellpose, 0.01 * cellpose);

  const CommandResult text = segment({image, "--diameter", "0"});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find(" px (estimated);"), std::string::npos) << text.out;

  const CommandResult fixed = segment({image, "--diameter", "30", "--json"});
  ASSERT_EQ(fixed.status, 0) << fixed.err;
  EXPECT_EQ(json_lines(fixed.out)[0]["diameter_estimated"], false);
  EXPECT_EQ(json_lines(fixed.out)[0]["diameter"], 30.0);
  const CommandResult fixed_text = segment({image, "--diameter", "30"});
  EXPECT_NE(fixed_text.out.find("at diameter 30.00 px;"), std::string::npos) << fixed_text.out;
}

// An ImageJ hyperstack of 2 time points, each 3 z-planes of 2 channels:
// one result per time point, each a [3, Y, X] mask stack.
TEST_F(Segment, EachTimePointOfAHyperstackHasItsOwnOutputs) {
  const CommandResult r =
      segment({CPIPC_SOURCE_DIR "/tests/data/images/imagej_tzcyx_uint16.tif", "--json", "--channels", "1,2"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(lines[k]["frame"], k);
    EXPECT_EQ(lines[k]["axes"], "ZYXC");
    EXPECT_EQ(lines[k]["planes"], 3);
    EXPECT_EQ(lines[k]["masks"], dir_.file("out/imagej_tzcyx_uint16_" + std::to_string(k) + "_cp_masks.tif"));
    EXPECT_TRUE(fs::exists(lines[k]["masks"].get<std::string>()));
  }
}

// A z-stack is segmented plane by plane (Cellpose's eval without do_3D)
// into one [Z, H, W] mask TIFF whose planes are the masks of each plane
// alone; --channel-axis makes the same file one 3-channel image.
TEST_F(Segment, AZStackGivesOneMaskStackOfItsPlanes) {
  const io::Array img = io::read_npy(kFixtures + "/tiny16/image.npy");
  const std::int64_t h = img.desc.shape[0], w = img.desc.shape[1];
  io::Array stack;
  const std::int64_t shape[3] = {3, h, w};
  stack.desc = ipc::TensorDesc::contiguous(img.desc.dtype, shape);
  for (int z = 0; z < 3; ++z) stack.data.insert(stack.data.end(), img.data.begin(), img.data.end());
  io::write_tiff(dir_.file("stack.tif"), stack.view(), "ZYX");

  const CommandResult plane = segment({kFixtures + "/tiny16/image.npy", "--json"});
  ASSERT_EQ(plane.status, 0) << plane.err;
  const std::vector<std::uint32_t> alone = test::read_masks_png(json_lines(plane.out).at(0)["masks"]);

  const CommandResult r = segment({dir_.file("stack.tif"), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["axes"], "ZYX");
  EXPECT_EQ(lines[0]["planes"], 3);
  EXPECT_EQ(lines[0]["shape"], nlohmann::json({3, h, w}));
  ASSERT_EQ(lines[0]["masks"], dir_.file("out/stack_cp_masks.tif"));
  const io::ImageFile masks = io::read_image_file(dir_.file("out/stack_cp_masks.tif"));
  ASSERT_EQ(masks.frames.size(), 1u);
  EXPECT_EQ(masks.frames[0].axes, "ZYX");
  EXPECT_EQ(masks.decided_by, "ImageJ metadata");
  const std::vector<std::uint32_t> got = io::to_labels(masks.frames[0].array, "masks");
  ASSERT_EQ(got.size(), 3 * alone.size());
  for (int z = 0; z < 3; ++z) {
    EXPECT_TRUE(std::equal(alone.begin(), alone.end(), got.begin() + z * h * w)) << "plane " << z;
  }
  EXPECT_EQ(lines[0]["objects"], 3 * *std::max_element(alone.begin(), alone.end()));

  const CommandResult c = segment({dir_.file("stack.tif"), "--channel-axis", "0", "--json"});
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(json_lines(c.out).at(0)["axes"], "YXC");
  EXPECT_EQ(json_lines(c.out).at(0)["shape"], nlohmann::json({h, w}));
  expect_failure(segment({dir_.file("stack.tif"), "--z-axis", "5"}), 2);
}

// --do-3d and --stitch-threshold (parity with Cellpose's own 3-D eval is
// tools/parity/volume_parity.py): a stack of 6 copies of one image is one
// [Z, H, W] label volume numbered 1..N; stitched, every object has the same
// footprint in each plane; without a Z axis both are refused in one line.
TEST_F(Segment, AZStackInThreeDIsOneLabelVolume) {
  const io::Array img = io::read_npy(kFixtures + "/gray8_nodiam/image.npy");
  const std::int64_t h = img.desc.shape[0], w = img.desc.shape[1], planes = 6;
  io::Array stack;
  const std::int64_t shape[3] = {planes, h, w};
  stack.desc = ipc::TensorDesc::contiguous(img.desc.dtype, shape);
  for (int z = 0; z < planes; ++z) stack.data.insert(stack.data.end(), img.data.begin(), img.data.end());
  io::write_tiff(dir_.file("stack.tif"), stack.view(), "ZYX");

  const auto volume = [&](const nlohmann::json& line) {
    const io::ImageFile masks = io::read_image_file(line["masks"].get<std::string>());
    EXPECT_EQ(masks.frames.at(0).axes, "ZYX");
    return io::to_labels(masks.frames.at(0).array, "masks");
  };
  for (const char* mode : {"--do-3d", "--stitch-threshold"}) {
    std::vector<std::string> args = {dir_.file("stack.tif"), "--json", "--save-flows", mode};
    if (std::string(mode) == "--stitch-threshold") args.push_back("0.5");
    const CommandResult r = segment(args);
    ASSERT_EQ(r.status, 0) << mode << ": " << r.err;
    const nlohmann::json line = json_lines(r.out).at(0);
    EXPECT_EQ(line["shape"], nlohmann::json({planes, h, w}));
    EXPECT_EQ(line["mode"], std::string(mode) == "--do-3d" ? "3-D" : "stitched");
    const std::vector<std::uint32_t> labels = volume(line);
    ASSERT_EQ(labels.size(), static_cast<std::size_t>(planes * h * w));
    const std::uint32_t n = line["objects"];
    EXPECT_GT(n, 3u) << mode;
    // Numbered 1..n, each present.
    std::vector<int> seen(n + 1, 0);
    for (std::uint32_t v : labels) {
      ASSERT_LE(v, n);
      seen[v] = 1;
    }
    EXPECT_EQ(std::count(seen.begin() + 1, seen.end(), 1), n) << mode;
    if (std::string(mode) == "--do-3d") {
      const io::Array flows = io::read_npy(line["flows"].get<std::string>());
      ASSERT_EQ(flows.desc.ndim, 4);
      EXPECT_EQ(flows.desc.dtype, ipc::kFloat32);
      EXPECT_EQ(flows.desc.shape[0], 4);
      EXPECT_EQ(flows.desc.shape[1], planes);
    } else {
      // Identical planes stitch into columns: plane z equals plane 0.
      for (std::int64_t z = 1; z < planes; ++z) {
        EXPECT_TRUE(std::equal(labels.begin(), labels.begin() + h * w, labels.begin() + z * h * w)) << "plane " << z;
      }
      // Each plane's own 2-D flows, [3, Z, H, W] as Cellpose's stitched eval returns them:
      // every plane is the image itself, so its flows are the image's.
      const CommandResult one = segment({kFixtures + "/gray8_nodiam/image.npy", "--json", "--save-flows"});
      ASSERT_EQ(one.status, 0) << one.err;
      const std::vector<float> want =
          io::to_float32(io::read_npy(json_lines(one.out).at(0)["flows"].get<std::string>()), "flows");
      ASSERT_TRUE(line.contains("flows")) << line.dump();
      const io::Array flows = io::read_npy(line["flows"].get<std::string>());
      ASSERT_EQ(flows.desc.ndim, 4);
      EXPECT_EQ(flows.desc.shape[0], 3);
      EXPECT_EQ(flows.desc.shape[1], planes);
      const std::vector<float> got = io::to_float32(flows, "flows");
      ASSERT_EQ(got.size(), want.size() * planes);
      const std::size_t plane = static_cast<std::size_t>(h * w);
      float worst = 0.0f;
      for (std::size_t c = 0; c < 3; ++c) {
        for (std::int64_t z = 0; z < planes; ++z) {
          for (std::size_t i = 0; i < plane; ++i) {
            worst = std::max(worst, std::abs(got[(c * planes + z) * plane + i] - want[c * plane + i]));
          }
        }
      }
      EXPECT_LT(worst, 1e-3f) << "stitched flows against the image's own";
    }
  }
  const CommandResult flat = segment({kFixtures + "/gray8_nodiam/image.npy", "--do-3d"});
  expect_failure(flat, 2);
  EXPECT_NE(flat.err.find("needs a z-stack"), std::string::npos) << flat.err;
  expect_failure(segment({dir_.file("stack.tif"), "--do-3d", "--stitch-threshold", "0.5"}), 2);
  expect_failure(segment({dir_.file("stack.tif"), "--do-3d", "--flow3d-smooth", "1,2"}), 2);
  expect_failure(segment({dir_.file("stack.tif"), "--stitch-threshold", "1.5"}), 2);
  expect_failure(segment({dir_.file("stack.tif"), "--do-3d", "--anisotropy", "0"}), 2);
}

TEST_F(Segment, AOnePixelImageGivesEmptyMasks) {
  io::Array one;
  const std::int64_t shape[2] = {1, 1};
  one.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  one.data.assign(1, std::byte{200});
  io::write_npy(dir_.file("one.npy"), one.view());
  const CommandResult r = segment({dir_.file("one.npy"), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_lines(r.out).at(0)["objects"], 0);
}

TEST_F(Segment, FlowsAreSavedOnRequest) {
  const CommandResult r = segment({kFixtures + "/tiny16/image.npy", "--save-flows", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const io::Array flows = io::read_npy(json_lines(r.out).at(0)["flows"]);
  EXPECT_EQ(flows.desc.to_string(), "float32[3, 17, 23]");
}

// Cellpose's files, chosen with Cellpose's spellings of its flags; their
// content is checked by tests/cellpose_files_check.py (numpy, roifile, Cellpose).
TEST_F(Segment, WritesTheSegNpyByDefaultAndTheFilesCellposesFlagsAskFor) {
  const std::string image = kFixtures + "/tiny16/image.npy";
  CommandResult r = segment({image, "--save_rois", "--save_tif", "--save_outlines", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json j = json_lines(r.out).at(0);
  EXPECT_EQ(j["masks"], dir_.file("out/image_cp_masks.tif"));  // --save_tif alone: no PNG, as Cellpose
  EXPECT_EQ(j["seg_npy"], dir_.file("out/image_seg.npy"));
  EXPECT_EQ(j["rois"], dir_.file("out/image_rois.zip"));
  EXPECT_EQ(j["outlines_png"], dir_.file("out/image_outlines_cp_masks.png"));
  for (const char* key : {"masks", "seg_npy", "rois", "outlines_png"}) {
    EXPECT_TRUE(fs::is_regular_file(j[key].get<std::string>())) << key;
  }
  EXPECT_FALSE(fs::exists(dir_.file("out/image_cp_masks.png")));

  fs::remove_all(dir_.file("out"));
  r = segment({image, "--no_npy", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  j = json_lines(r.out).at(0);
  EXPECT_EQ(j["masks"], dir_.file("out/image_cp_masks.png"));
  EXPECT_FALSE(j.contains("seg_npy"));
  EXPECT_FALSE(fs::exists(dir_.file("out/image_seg.npy")));
}

TEST_F(Segment, MissingAndUnreadableImagesAreOneLineEach) {
  expect_failure(segment({dir_.file("absent.png")}), 3);
  write_bytes(dir_.file("empty.png"), "");
  expect_failure(segment({dir_.file("empty.png")}), 2);
  write_bytes(dir_.file("text.png"), "this is not a PNG\n");
  expect_failure(segment({dir_.file("text.png")}), 2);
  expect_failure(segment({dir_.path().string()}), 2);  // a directory
  // A real PNG cut in half.
  io::Array img;
  const std::int64_t shape[2] = {64, 64};
  img.desc = ipc::TensorDesc::contiguous(ipc::kUInt16, shape);
  img.data.resize(img.desc.nbytes());
  std::mt19937 rng(3);
  for (auto& b : img.data) b = static_cast<std::byte>(rng());
  if (io::image_codecs_available()) {
    io::write_array(dir_.file("full.png"), img.view());
    const auto size = fs::file_size(dir_.file("full.png"));
    fs::copy_file(dir_.file("full.png"), dir_.file("cut.png"));
    fs::resize_file(dir_.file("cut.png"), size / 2);
    expect_failure(segment({dir_.file("cut.png")}), 2);
  }
}

TEST_F(Segment, ImagesThatCannotBeSegmentedSayWhy) {
  io::Array empty;
  const std::int64_t zero[2] = {0, 0};
  empty.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, zero);
  io::write_npy(dir_.file("zero.npy"), empty.view());
  expect_failure(segment({dir_.file("zero.npy")}), 2);

  io::Array five;
  const std::int64_t shape[3] = {32, 32, 5};
  five.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  five.data.assign(five.desc.nbytes(), std::byte{7});
  io::write_npy(dir_.file("five.npy"), five.view());
  const CommandResult r = segment({dir_.file("five.npy"), "--channels", "6,0"});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("channel 6 requested"), std::string::npos) << r.err;
  expect_failure(segment({dir_.file("five.npy"), "--channels", "red"}), 2);
}

TEST_F(Segment, AnImageLargerThanMemoryIsRefusedNotKilled) {
  // 2 TB of uint16 (a sparse file): more than any workstation's memory; an
  // 80 GB one was read whole on a 128 GB GPU machine.
  write_sparse_npy(dir_.file("huge.npy"), 1000000, 1000000);
  const CommandResult r = segment({dir_.file("huge.npy")});
  expect_failure(r, 5);
  EXPECT_NE(r.err.find("of memory available"), std::string::npos) << r.err;
}

// 36 MB on disk, about 4 GB to segment: under `ulimit -v` (what a container
// or a shared workstation imposes) that is refused up front, exit 5.
TEST_F(Segment, AnImageLargerThanTheProcessMemoryLimitIsRefused) {
  io::Array big;
  const std::int64_t shape[2] = {6000, 6000};
  big.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  big.data.assign(big.desc.nbytes(), std::byte{0});
  io::write_npy(dir_.file("big.npy"), big.view());
  const CommandResult r =
      test::run_cpipc({"segment", dir_.file("big.npy"), "--device", "cpu", "-o", dir_.path().string()}, 120s,
                      "ulimit -v " + std::to_string(test::torch_address_space_kib()));
  expect_failure(r, 5);
  EXPECT_NE(r.err.find("needs about"), std::string::npos) << r.err;
}

// The same for a z-stack in 3-D: 40 MB on disk, several GB to segment in 3-D.
TEST_F(Segment, AStackLargerThanTheProcessMemoryLimitIsRefusedIn3D) {
  io::Array big;
  const std::int64_t shape[3] = {40, 1000, 1000};
  big.desc = ipc::TensorDesc::contiguous(ipc::kUInt8, shape);
  big.data.assign(big.desc.nbytes(), std::byte{0});
  io::write_npy(dir_.file("stack.npy"), big.view());
  for (const char* mode : {"--do-3d", "--stitch-threshold"}) {
    std::vector<std::string> args = {"segment", dir_.file("stack.npy"), "--z-axis", "0", "--device", "cpu",
                                     "-o",      dir_.path().string(),   mode};
    if (std::string(mode) == "--stitch-threshold") args.push_back("0.5");
    const CommandResult r = test::run_cpipc(args, 120s, "ulimit -v " + std::to_string(test::torch_address_space_kib()));
    expect_failure(r, 5);
    EXPECT_NE(r.err.find("z-stack 40x1000x1000 needs about"), std::string::npos) << mode << ": " << r.err;
  }
}

TEST_F(Segment, ARandomBlobIsNotAModel) {
  std::string blob(8192, '\0');
  std::mt19937 rng(5);
  for (char& c : blob) c = static_cast<char>(rng());
  write_bytes(dir_.file("blob.pt"), blob);
  const CommandResult r = segment({kFixtures + "/tiny16/image.npy", "--model", dir_.file("blob.pt")});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("is not a TorchScript model"), std::string::npos) << r.err;
  expect_failure(segment({kFixtures + "/tiny16/image.npy", "--model", dir_.file("none.pt")}), 3);
}

// Images are read ahead and outputs written behind the segmentation; the
// report still follows the command line, and a bad image is its own line.
TEST_F(Segment, OneBadImageDoesNotStopTheOthers) {
  for (const char* name : {"a.npy", "b.npy", "c.npy"}) fs::copy_file(kFixtures + "/tiny16/image.npy", dir_.file(name));
  write_bytes(dir_.file("text.png"), "this is not a PNG\n");
  const CommandResult r = segment({dir_.file("a.npy"), dir_.file("absent.npy"), dir_.file("b.npy"),
                                   dir_.file("text.png"), dir_.file("c.npy"), "--json"});
  EXPECT_EQ(r.status, 3) << "the first failure's status; stderr: " << r.err;
  const auto errors = r.err_lines();
  ASSERT_EQ(errors.size(), 2u) << r.err;
  for (const auto& e : errors) EXPECT_TRUE(e.starts_with("cpipc: error: ")) << e;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  const char* expected[] = {"a.npy", "absent.npy", "b.npy", "text.png", "c.npy"};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(fs::path(lines[i]["image"].get<std::string>()).filename(), expected[i]) << lines[i];
    EXPECT_EQ(lines[i].contains("error"), i == 1 || i == 3) << lines[i];
  }
  EXPECT_GT(lines[0]["objects"].get<int>(), 0);
  EXPECT_EQ(lines[2]["objects"], lines[0]["objects"]);
  EXPECT_EQ(lines[4]["objects"], lines[0]["objects"]);
  for (const char* stem : {"a", "b", "c"}) {
    EXPECT_EQ(test::read_masks_png(dir_.file(std::string("out/") + stem + "_cp_masks.png")),
              test::read_masks_png(dir_.file("out/a_cp_masks.png")));
  }
}

TEST_F(Segment, UsageErrorsExit2) {
  expect_failure(run_cpipc({"segment"}), 2);
  expect_failure(segment({kFixtures + "/tiny16/image.npy", "--precision", "fp8"}), 2);
  expect_failure(segment({kFixtures + "/tiny16/image.npy", "--precision", "bf16"}), 2);  // on the CPU
  expect_failure(segment({kFixtures + "/tiny16/image.npy", "--precision", "tf32"}), 2);
  expect_failure(run_cpipc({"segment", kFixtures + "/tiny16/image.npy", "--device", "tpu"}), 2);
}

}  // namespace
}  // namespace cpipc
