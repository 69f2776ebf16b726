// `cpipc stats` and `cpipc outlines` as users run them: the real binary
// reading a label image another process (`cpipc publish`) serves, outputs
// read back and compared with scikit-image's and Cellpose's (tests/data/stats).
#include <signal.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "cpipc/cuda/device.hpp"
#if CPIPC_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "cpipc/cuda/device_stream.hpp"
#endif
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/util/child_process.hpp"
#include "post_fixture.hpp"
#include "support/cli_support.hpp"
#include "support/gpu_support.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using namespace std::chrono_literals;
using test::CommandResult;
using test::expect_failure;
using test::parse_csv;
using test::Publisher;
using test::read_text;
using test::run_cpipc;
using test::stats_data;

// The fixture's label image (uint16 [48, 64]) published under a fresh name.
class PostCli : public ::testing::Test {
 protected:
  void SetUp() override { publisher_.emplace(stats_data("labels.npy"), name_); }

  std::string out(const std::string& file) const { return dir_.file(file); }

  test::TempDir dir_;
  std::string name_ = test::unique_name();
  std::optional<Publisher> publisher_;
};

TEST_F(PostCli, StatsMatchRegionpropsOfThePublishedFrame) {
  const CommandResult r = run_cpipc({"stats", name_, "--image", stats_data("gray.npy"), "-o", out("x.csv")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("22 objects in frame 1 of '" + name_ + "' (uint16[48, 64])"), std::string::npos) << r.out;
  test::expect_table_near(parse_csv(read_text(out("x.csv"))), parse_csv(read_text(stats_data("stats_gray.csv"))));
}

TEST_F(PostCli, StatsOfAnRgbImageHaveColumnsPerChannel) {
  const CommandResult r = run_cpipc({"stats", name_, "--image", stats_data("rgb.npy"), "-o", out("x.csv")});
  ASSERT_EQ(r.status, 0) << r.err;
  test::expect_table_near(parse_csv(read_text(out("x.csv"))), parse_csv(read_text(stats_data("stats_rgb.csv"))));
}

TEST_F(PostCli, StatsOfOneChannelUseThePlainColumnNames) {
  const CommandResult r =
      run_cpipc({"stats", name_, "--image", stats_data("rgb.npy"), "--channel", "2", "-o", out("x.csv")});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto got = parse_csv(read_text(out("x.csv")));
  ASSERT_EQ(got.header.back(), "intensity_max");
  // The blue channel's columns of the per-channel table, renamed.
  const auto rgb = parse_csv(read_text(stats_data("stats_rgb.csv")));
  test::Csv want{{"label", "intensity_mean", "intensity_min", "intensity_max"}, {}};
  for (const auto& row : rgb.rows) want.rows.push_back({row[0], row[7], row[8], row[9]});
  test::expect_table_near(got, want);
}

TEST_F(PostCli, StatsWithoutAnImageToStdout) {
  const CommandResult r = run_cpipc({"stats", name_, "-o", "-"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto got = parse_csv(r.out);
  EXPECT_EQ(got.header.size(), 10u);
  EXPECT_EQ(got.header.front(), "label");
  auto want = parse_csv(read_text(stats_data("stats_gray.csv")));
  want.header.resize(10);
  test::expect_table_near(got, want);
}

// A mask file (what `cpipc segment` and Cellpose write) is measured and
// drawn like the segment it came from: the same CSV, the same picture.
TEST_F(PostCli, AMaskFileGivesTheSameTableAndPictureAsItsSegment) {
  ASSERT_EQ(run_cpipc({"stats", name_, "--image", stats_data("gray.npy"), "-o", out("seg.csv")}).status, 0);
  ASSERT_EQ(run_cpipc({"outlines", name_, "--image", stats_data("gray.npy"), "-o", out("seg.npy")}).status, 0);
  std::vector<std::string> files = {stats_data("labels.npy")};
  if (io::image_codecs_available()) {
    for (const char* ext : {".png", ".tif"}) {
      files.push_back(out(std::string("masks") + ext));
      ASSERT_EQ(run_cpipc({"save", name_, files.back()}).status, 0);
    }
  }
  for (const std::string& file : files) {
    const CommandResult s = run_cpipc({"stats", file, "--image", stats_data("gray.npy"), "-o", out("f.csv"), "--json"});
    ASSERT_EQ(s.status, 0) << file << ": " << s.err;
    EXPECT_NE(s.out.find("\"file\":"), std::string::npos) << s.out;
    EXPECT_EQ(read_text(out("f.csv")), read_text(out("seg.csv"))) << file;
    const CommandResult o = run_cpipc({"outlines", file, "--image", stats_data("gray.npy"), "-o", out("f.npy")});
    ASSERT_EQ(o.status, 0) << file << ": " << o.err;
    EXPECT_EQ(read_text(out("f.npy")), read_text(out("seg.npy"))) << file;
  }
  expect_failure(run_cpipc({"stats", out("absent.png"), "-o", out("x.csv")}), 3);
  expect_failure(run_cpipc({"stats", files.front(), "--frame", "next", "-o", out("x.csv")}), 2);
}

// --device cuda measures on the GPU and writes the same table, byte for byte.
TEST_F(PostCli, StatsOnTheGpuAreTheSameTable) {
  std::string why;
  if (cuda::device_count(&why) == 0) {
    // Without a GPU it says so in one line, exit 1 (or 2 in a build without CUDA).
    const CommandResult r = run_cpipc({"stats", name_, "-o", out("g.csv"), "--device", "cuda"});
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.err_lines().size(), 1u) << r.err;
    GTEST_SKIP() << "no GPU: " << why;
  }
  for (const char* image : {"gray.npy", "rgb.npy"}) {
    const CommandResult cpu = run_cpipc({"stats", name_, "--image", stats_data(image), "-o", out("c.csv")});
    const CommandResult gpu =
        run_cpipc({"stats", name_, "--image", stats_data(image), "-o", out("g.csv"), "--device", "cuda"});
    ASSERT_EQ(cpu.status, 0) << cpu.err;
    ASSERT_EQ(gpu.status, 0) << gpu.err;
    EXPECT_EQ(read_text(out("g.csv")), read_text(out("c.csv"))) << image;
  }
}

TEST_F(PostCli, OutlinesOnTheGpuAreTheSamePicture) {
  std::string why;
  if (cuda::device_count(&why) == 0) GTEST_SKIP() << "no GPU: " << why;
  const CommandResult cpu = run_cpipc({"outlines", name_, "--image", stats_data("gray.npy"), "-o", out("c.npy")});
  const CommandResult gpu =
      run_cpipc({"outlines", name_, "--image", stats_data("gray.npy"), "-o", out("g.npy"), "--device", "cuda"});
  ASSERT_EQ(cpu.status, 0) << cpu.err;
  ASSERT_EQ(gpu.status, 0) << gpu.err;
  EXPECT_EQ(read_text(out("g.npy")), read_text(out("c.npy")));
}

// A producer whose segment exports device views (this process, through a
// DeviceStream): --device cuda reads the frame where it lies, through CUDA
// IPC, and gives the CPU's table and picture.
TEST(PostCliOnADeviceView, StatsAndOutlinesReadTheDeviceViewAndAgreeWithTheCpu) {
  SKIP_WITHOUT_GPU();
#if CPIPC_HAVE_CUDA
  const io::Array labels = io::read_npy(stats_data("labels.npy"));
  const std::string name = test::unique_name();
  cuda::DeviceStream stream(name, 2, 0);
  cuda::DeviceFrame frame = stream.begin(labels.desc);
  ASSERT_EQ(cudaMemcpy(frame.device_data(), labels.data.data(), labels.data.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  (void)frame.publish();
  if (!stream.exports()) GTEST_SKIP() << "CUDA IPC is unavailable here: " << stream.why_host_only();
  const test::TempDir dir;
  for (const char* command : {"stats", "outlines"}) {
    const std::string ext = command == std::string("stats") ? ".csv" : ".npy";
    const CommandResult cpu =
        run_cpipc({command, name, "--image", stats_data("gray.npy"), "-o", dir.file(std::string("c") + ext)});
    const CommandResult gpu = run_cpipc({command, name, "--image", stats_data("gray.npy"), "-o",
                                         dir.file(std::string("g") + ext), "--device", "cuda", "--json"});
    ASSERT_EQ(cpu.status, 0) << cpu.err;
    ASSERT_EQ(gpu.status, 0) << gpu.err;
    EXPECT_EQ(nlohmann::json::parse(gpu.out)["view"], "device") << command << ": " << gpu.out;
    EXPECT_EQ(read_text(dir.file(std::string("g") + ext)), read_text(dir.file(std::string("c") + ext))) << command;
  }
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

TEST_F(PostCli, StatsJsonSummary) {
  const CommandResult r = run_cpipc({"stats", name_, "-o", out("x.csv"), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("segment"), name_);
  EXPECT_EQ(j.at("objects"), 22);
  EXPECT_EQ(j.at("frame_id"), 1);
  EXPECT_EQ(j.at("masks"), "uint16[48, 64]");
  EXPECT_TRUE(j.at("image").is_null());
  EXPECT_EQ(j.at("view"), "host");  // the CPU reads the host view
}

TEST_F(PostCli, OutlinesOnAPngImageAreCellposesPicture) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const std::string image = out("img.png");
  io::write_array(image, io::read_npy(stats_data("gray.npy")).view());  // 16-bit PNG
  const CommandResult r = run_cpipc({"outlines", name_, "--image", image, "-o", out("y.png")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const io::Array got = io::read_array(out("y.png"));
  const io::Array want = io::read_npy(stats_data("outlines_rgb.npy"));
  EXPECT_TRUE(got.desc.same_layout(want.desc)) << got.desc.to_string();
  EXPECT_EQ(got.data, want.data);
}

TEST_F(PostCli, OutlinesWithoutAnImageAreRedOnBlack) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const CommandResult r = run_cpipc({"outlines", name_, "-o", out("y.png")});
  ASSERT_EQ(r.status, 0) << r.err;
  const io::Array got = io::read_array(out("y.png"));
  const io::Array mask = io::read_npy(stats_data("outlines.npy"));
  ASSERT_EQ(got.data.size(), mask.data.size() * 3) << got.desc.to_string();
  for (std::size_t i = 0; i < mask.data.size(); ++i) {
    const bool outline = mask.data[i] != std::byte{0};
    ASSERT_EQ(got.data[3 * i], std::byte{static_cast<unsigned char>(outline ? 255 : 0)}) << i;
    ASSERT_EQ(got.data[3 * i + 1], std::byte{0}) << i;
    ASSERT_EQ(got.data[3 * i + 2], std::byte{0}) << i;
  }
}

TEST_F(PostCli, OutlinesAsNpyNeedNoCodecs) {
  const CommandResult r =
      run_cpipc({"outlines", name_, "--image", stats_data("gray.npy"), "-o", out("y.npy"), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("output"), out("y.npy"));
  EXPECT_EQ(io::read_npy(out("y.npy")).data, io::read_npy(stats_data("outlines_rgb.npy")).data);
}

// A .tif picture is RGB (one page, 3 samples per pixel), which Fiji shows in
// colour, not a 3-channel hyperstack shown channel by channel in gray.
TEST_F(PostCli, OutlinesAsTiffAreAnRgbPicture) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const CommandResult r = run_cpipc({"outlines", name_, "--image", stats_data("gray.npy"), "-o", out("y.tif")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(io::read_array(out("y.tif")).data, io::read_npy(stats_data("outlines_rgb.npy")).data);
  const std::string bytes = read_text(out("y.tif"));
  EXPECT_NE(bytes.find("ImageJ=1.11a\nimages=1\n"), std::string::npos);
  EXPECT_EQ(bytes.find("channels="), std::string::npos);
}

TEST_F(PostCli, MissingSegmentExits3) {
  for (const char* command : {"stats", "outlines"}) {
    const CommandResult r = run_cpipc({command, name_ + "-nope", "-o", out("x.csv")});
    expect_failure(r, 3);
  }
}

TEST_F(PostCli, ImageOfAnotherSizeExits2NamingBothShapes) {
  const std::string image = out("small.npy");
  io::Array small;
  const std::int64_t shape[2] = {30, 40};
  small.desc = ipc::TensorDesc::contiguous(ipc::kUInt16, shape);
  small.data.resize(small.desc.nbytes());
  io::write_array(image, small.view());
  for (const char* command : {"stats", "outlines"}) {
    const CommandResult r = run_cpipc({command, name_, "--image", image, "-o", out("x.png")});
    expect_failure(r, 2);
    EXPECT_NE(r.err.find("uint16[30, 40]"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("uint16[48, 64]"), std::string::npos) << r.err;
  }
}

TEST_F(PostCli, ChannelTheImageLacksExits2) {
  const CommandResult r =
      run_cpipc({"stats", name_, "--image", stats_data("rgb.npy"), "--channel", "3", "-o", out("x.csv")});
  expect_failure(r, 2);
}

TEST_F(PostCli, MissingImageExits3) {
  const CommandResult r = run_cpipc({"outlines", name_, "--image", out("none.png"), "-o", out("y.png")});
  expect_failure(r, 3);
}

TEST_F(PostCli, UnwritableOutputExits1) {
  const CommandResult stats = run_cpipc({"stats", name_, "-o", out("no/such/dir/x.csv")});
  expect_failure(stats, 1);
  const CommandResult outlines = run_cpipc({"outlines", name_, "-o", out("no/such/dir/y.npy")});
  expect_failure(outlines, 1);
}

TEST_F(PostCli, NoNextFrameExits4) {
  const CommandResult r = run_cpipc({"stats", name_, "--frame", "next", "--wait-ms", "200", "-o", out("x.csv")});
  expect_failure(r, 4);
}

// A label volume (uint16 [6, 20, 24], tests/data/stats/labels_3d.npy)
// published as a [Z, Y, X] frame: `cpipc stats` measures it in 3-D.
class PostCli3D : public ::testing::Test {
 protected:
  void SetUp() override { publisher_.emplace(stats_data("labels_3d.npy"), name_); }
  std::string out(const std::string& file) const { return dir_.file(file); }

  test::TempDir dir_;
  std::string name_ = test::unique_name();
  std::optional<Publisher> publisher_;
};

TEST_F(PostCli3D, StatsOfAVolumeMatchRegionpropsIn3D) {
  // gray_3d.npy names no axes: read as [Z, Y, X] beside a volume.
  const CommandResult r =
      run_cpipc({"stats", name_, "--image", stats_data("gray_3d.npy"), "-o", out("x.csv"), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto got = parse_csv(read_text(out("x.csv")));
  const auto want = parse_csv(read_text(stats_data("stats_3d_gray.csv")));
  EXPECT_EQ(got.header, want.header);
  test::expect_table_near(got, want);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["objects"], 11);
  EXPECT_EQ(j["masks"], "uint16[6, 20, 24]");
}

TEST_F(PostCli3D, StatsOfAVolumeWithoutAnImage) {
  const CommandResult r = run_cpipc({"stats", name_, "-o", "-"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto got = parse_csv(r.out);
  EXPECT_EQ(got.header.back(), "equivalent_diameter");
  EXPECT_EQ(got.rows.size(), 11u);
  auto want = parse_csv(read_text(stats_data("stats_3d_gray.csv")));
  want.header.resize(got.header.size());  // the columns before the intensity ones
  EXPECT_EQ(got.header, want.header);
  test::expect_table_near(got, want);
}

TEST_F(PostCli3D, StatsOfAVolumeWithZStackTiffs) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const CommandResult gray = run_cpipc({"stats", name_, "--image", stats_data("gray_3d.tif"), "-o", out("g.csv")});
  ASSERT_EQ(gray.status, 0) << gray.err;
  test::expect_table_near(parse_csv(read_text(out("g.csv"))), parse_csv(read_text(stats_data("stats_3d_gray.csv"))));
  // An ImageJ hyperstack ZCYX: two channels, columns per channel.
  const CommandResult two = run_cpipc({"stats", name_, "--image", stats_data("two_3d.tif"), "-o", out("t.csv")});
  ASSERT_EQ(two.status, 0) << two.err;
  const auto got = parse_csv(read_text(out("t.csv")));
  EXPECT_EQ(got.header.back(), "intensity_max_c1");
  test::expect_table_near(got, parse_csv(read_text(stats_data("stats_3d_two.csv"))));
}

TEST_F(PostCli3D, StatsOfOneChannelOfAZStack) {
  const CommandResult r =
      run_cpipc({"stats", name_, "--image", stats_data("two_3d.npy"), "--channel", "1", "-o", out("x.csv")});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto got = parse_csv(read_text(out("x.csv")));
  EXPECT_EQ(got.header.back(), "intensity_max");
  const auto want = parse_csv(read_text(stats_data("stats_3d_two.csv")));
  ASSERT_EQ(got.rows.size(), want.rows.size());
  for (std::size_t i = 0; i < want.rows.size(); ++i) {
    EXPECT_EQ(got.rows[i].end()[-3], want.rows[i][4]);  // intensity_mean_c1
    EXPECT_EQ(got.rows[i].back(), want.rows[i][6]);     // intensity_max_c1
  }
}

TEST_F(PostCli3D, AStackMaskFileGivesTheSameTableAsItsSegment) {
  ASSERT_EQ(run_cpipc({"stats", name_, "-o", out("seg.csv")}).status, 0);
  std::vector<std::string> files = {out("m.npy")};
  if (io::image_codecs_available()) files.push_back(out("m.tif"));
  for (const std::string& file : files) {
    ASSERT_EQ(run_cpipc({"save", name_, file}).status, 0) << file;
    const CommandResult r = run_cpipc({"stats", file, "-o", out("f.csv")});
    ASSERT_EQ(r.status, 0) << file << ": " << r.err;
    EXPECT_EQ(read_text(out("f.csv")), read_text(out("seg.csv"))) << file;
  }
}

TEST_F(PostCli3D, AnImageThatIsNotAMatchingZStackExits2) {
  const CommandResult r = run_cpipc({"stats", name_, "--image", stats_data("gray.npy"), "-o", out("x.csv")});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("[6, 20, 24]"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// Each plane's outlines are those of that plane alone, drawn on that plane.
TEST_F(PostCli3D, OutlinesOfAVolumeArePlaneByPlane) {
  const CommandResult r = run_cpipc({"outlines", name_, "-o", out("y.npy")});
  ASSERT_EQ(r.status, 0) << r.err;
  const io::Array got = io::read_npy(out("y.npy"));
  ASSERT_EQ(got.desc.to_string(), "uint8[6, 20, 24, 3]");
  const io::Array labels = io::read_npy(stats_data("labels_3d.npy"));
  const std::int64_t plane_shape[2] = {20, 24};
  const ipc::TensorDesc plane = ipc::TensorDesc::contiguous(labels.desc.dtype, plane_shape);
  const std::size_t plane_bytes = static_cast<std::size_t>(plane.nbytes());
  int drawn = 0;
  for (int z = 0; z < 6; ++z) {
    io::write_npy(out("p.npy"), {labels.data.data() + z * plane_bytes, plane});
    const CommandResult p = run_cpipc({"outlines", out("p.npy"), "-o", out("p_rgb.npy")});
    ASSERT_EQ(p.status, 0) << p.err;
    const io::Array want = io::read_npy(out("p_rgb.npy"));
    ASSERT_EQ(want.data.size(), 20u * 24u * 3u);
    EXPECT_TRUE(std::equal(want.data.begin(), want.data.end(), got.data.begin() + z * want.data.size())) << z;
    drawn += static_cast<int>(std::count(want.data.begin(), want.data.end(), std::byte{255}));
  }
  EXPECT_GT(drawn, 0);
}

// As a .tif the picture is an RGB stack (what Fiji opens in colour), the
// same pixels as the .npy.
TEST_F(PostCli3D, OutlinesOfAVolumeOnItsZStackAsAnRgbTiff) {
  SKIP_WITHOUT_IMAGE_CODECS();
  for (const char* file : {"y.npy", "y.tif"}) {
    const CommandResult r = run_cpipc({"outlines", name_, "--image", stats_data("gray_3d.npy"), "-o", out(file)});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  const io::Array npy = io::read_npy(out("y.npy"));
  const io::ImageFile tif = io::read_image_file(out("y.tif"));
  ASSERT_EQ(tif.frames.size(), 1u);
  EXPECT_EQ(tif.frames.front().axes, "ZYXC");
  EXPECT_EQ(tif.frames.front().array.desc.to_string(), "uint8[6, 20, 24, 3]");
  EXPECT_EQ(tif.frames.front().array.data, npy.data);
  const std::string bytes = read_text(out("y.tif"));
  EXPECT_NE(bytes.find("ImageJ=1.11a\nimages=6\nslices=6\n"), std::string::npos);
}

TEST_F(PostCli3D, OutlinesOfAVolumeToPngExit2) {
  const CommandResult r = run_cpipc({"outlines", name_, "-o", out("y.png")});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find(".tif"), std::string::npos) << r.err;
}

TEST(PostCliInput, FloatFramesAreNotLabelsExit2) {
  test::TempDir dir;
  io::Array a;
  const std::int64_t shape[2] = {4, 4};
  a.desc = ipc::TensorDesc::contiguous(ipc::kFloat32, shape);
  a.data.resize(a.desc.nbytes());
  const std::string file = dir.file("float.npy");
  io::write_array(file, a.view());
  const std::string name = test::unique_name();
  const Publisher publisher(file, name);
  const CommandResult r = run_cpipc({"stats", name, "-o", dir.file("x.csv")});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("float32"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cpipc
