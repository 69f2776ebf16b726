// The cpipc command line, run as users run it: the real binary in its own
// process, inputs written with cpipc::io, outputs read back and compared.
#include <signal.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/array_file.hpp"
#include "cpipc/io/image.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/ipc/name.hpp"
#include "cpipc/util/child_process.hpp"
#include "support/cli_support.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using namespace std::chrono_literals;
using test::CommandResult;
using test::expect_failure;
using test::Publisher;
using test::run_cpipc;
using test::shm_exists;
using test::unique_name;

// A uint16[40, 56] label image: a background of 0 and labelled blocks 1..35,
// with a few labels above 255 so that 8-bit narrowing would show.
io::Array label_image() {
  io::Array a;
  const std::int64_t shape[2] = {40, 56};
  a.desc = ipc::TensorDesc::contiguous(ipc::kUInt16, shape);
  a.data.resize(a.desc.nbytes());
  auto* px = reinterpret_cast<std::uint16_t*>(a.data.data());
  for (int y = 0; y < 40; ++y) {
    for (int x = 0; x < 56; ++x) {
      const bool border = y % 8 == 0 || x % 8 == 0;
      const int label = (y / 8) * 7 + x / 8 + 1;
      px[y * 56 + x] = border ? 0 : static_cast<std::uint16_t>(label < 30 ? label : label * 100);
    }
  }
  return a;
}

class Cli : public ::testing::Test {
 protected:
  // `labels` written as FILE in the temp dir.
  std::string input(const std::string& file_name) {
    const std::string path = dir_.file(file_name);
    io::write_array(path, labels_.view());
    return path;
  }
  // Publishes the labels from a .npy under a fresh name.
  Publisher& publish_labels() {
    name_ = unique_name();
    publisher_.emplace(input("labels.npy"), name_);
    return *publisher_;
  }
  // `cpipc save NAME FILE` of the published labels, then FILE read back.
  io::Array save_and_read_back(const std::string& file_name) {
    const std::string out = dir_.file(file_name);
    const CommandResult r = run_cpipc({"save", name_, out});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("saved frame 1 of '" + name_ + "'"), std::string::npos) << r.out;
    return io::read_array(out);
  }

  test::TempDir dir_;
  io::Array labels_ = label_image();
  std::string name_;
  std::optional<Publisher> publisher_;
};

TEST_F(Cli, PublishedNpyIsSavedAsTheSameNpy) {
  publish_labels();
  const io::Array back = save_and_read_back("out.npy");
  EXPECT_TRUE(back.desc.same_layout(labels_.desc)) << back.desc.to_string();
  EXPECT_EQ(back.data, labels_.data);
}

TEST_F(Cli, SaveBinWritesTheRawBytes) {
  publish_labels();
  const std::string out = dir_.file("out.bin");
  const CommandResult r = run_cpipc({"save", name_, out});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::read_file_bytes(out), labels_.data);
}

TEST_F(Cli, SavePngKeeps16BitLabels) {
  SKIP_WITHOUT_IMAGE_CODECS();
  publish_labels();
  const io::Array back = save_and_read_back("out.png");
  EXPECT_TRUE(back.desc.same_layout(labels_.desc)) << back.desc.to_string();
  EXPECT_EQ(back.data, labels_.data);
}

TEST_F(Cli, SaveTifKeeps16BitLabels) {
  SKIP_WITHOUT_IMAGE_CODECS();
  publish_labels();
  const io::Array back = save_and_read_back("out.tif");
  EXPECT_TRUE(back.desc.same_layout(labels_.desc)) << back.desc.to_string();
  EXPECT_EQ(back.data, labels_.data);
}

// uint32 labels above 65 535 (Cellpose's masks from 65 536 objects on) are
// saved as a uint32 TIFF, in every build: our own writer, as `segment` uses.
TEST_F(Cli, SaveTifKeeps32BitLabels) {
  io::Array wide;
  wide.desc = ipc::TensorDesc::contiguous(ipc::kUInt32, {labels_.desc.shape.data(), 2});
  wide.data.resize(wide.desc.nbytes());
  auto* px = reinterpret_cast<std::uint32_t*>(wide.data.data());
  for (std::int64_t i = 0; i < wide.desc.numel(); ++i) px[i] = static_cast<std::uint32_t>(i * 47);  // up to 105 233
  labels_ = wide;
  publish_labels();
  const io::Array back = save_and_read_back("out.tif");
  EXPECT_TRUE(back.desc.same_layout(labels_.desc)) << back.desc.to_string();
  EXPECT_EQ(back.data, labels_.data);
}

TEST_F(Cli, PublishedPngServesItsPixels) {
  SKIP_WITHOUT_IMAGE_CODECS();
  name_ = unique_name();
  const Publisher publisher(input("labels.png"), name_);
  const io::Array back = save_and_read_back("out.npy");
  EXPECT_TRUE(back.desc.same_layout(labels_.desc)) << back.desc.to_string();
  EXPECT_EQ(back.data, labels_.data);
}

// publish --json names the axes it found and how; the segment holds the
// hyperstack in cpipc's order, and `save` writes it back with its axes.
TEST_F(Cli, PublishJsonNamesTheAxesAndSaveKeepsThem) {
  const std::string file = CPIPC_SOURCE_DIR "/tests/data/images/imagej_zcyx_uint16.tif";
  name_ = unique_name();
  const CommandResult r = run_cpipc({"publish", file, name_, "--json", "--linger-ms", "0"});
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
  EXPECT_EQ(j["axes"], "ZYXC");
  EXPECT_EQ(j["stored_axes"], "ZCYX");
  EXPECT_EQ(j["axes_from"], "ImageJ metadata");
  EXPECT_EQ(j["shape"], nlohmann::json({3, 40, 48, 2}));
  EXPECT_EQ(j["dtype"], "uint16");

  // Named axes win: the same file with its channels said to be axis 0.
  const CommandResult named =
      run_cpipc({"publish", file, unique_name(), "--json", "--linger-ms", "0", "--channel-axis", "0", "--z-axis", "1"});
  ASSERT_EQ(named.status, 0) << named.err;
  const nlohmann::json n = nlohmann::json::parse(named.out.substr(0, named.out.find('\n')));
  EXPECT_EQ(n["shape"], nlohmann::json({2, 40, 48, 3}));
  EXPECT_EQ(n["axes_from"], "--channel-axis and --z-axis");

  Publisher kept(file, name_);
  const io::Array expect = io::read_npy(CPIPC_SOURCE_DIR "/tests/data/images/imagej_zcyx_uint16.expect.npy");
  const CommandResult saved = run_cpipc({"save", name_, dir_.file("back.tif")});
  ASSERT_EQ(saved.status, 0) << saved.err;
  const io::ImageFile back = io::read_image_file(dir_.file("back.tif"));
  ASSERT_EQ(back.frames.size(), 1u);
  EXPECT_EQ(back.frames[0].axes, "ZYXC");
  EXPECT_EQ(back.decided_by, "ImageJ metadata");
  EXPECT_TRUE(back.frames[0].array.data == expect.data);
}

// What cannot be read exactly is refused: exit 2, one line naming the file
// and what is unsupported.
TEST_F(Cli, FilesThatCannotBeReadExactlyAreRefused) {
  for (const auto& [file, what] : std::vector<std::pair<std::string, std::string>>{
           {"complex64.tif", "complex"}, {"bilevel_1bit.tif", "1-bit"}, {"packed_12bit.tif", "12-bit"}}) {
    const std::string path = CPIPC_SOURCE_DIR "/tests/data/images/" + file;
    const CommandResult r = run_cpipc({"publish", path, unique_name(), "--linger-ms", "0"});
    expect_failure(r, 2);
    EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  }
}

TEST_F(Cli, PublishStopsCleanlyAfterLingering) {
  name_ = unique_name();
  util::ChildProcess publish(
      {test::cpipc_binary(), "publish", input("labels.npy"), name_, "--frames", "5", "--linger-ms", "100"});
  EXPECT_EQ(publish.wait(10s), 0);
  const std::string out = publish.read_all(1s);
  EXPECT_NE(out.find("published 5 frames"), std::string::npos) << out;
  EXPECT_FALSE(shm_exists(name_));
}

TEST_F(Cli, LsJsonListsTheSegment) {
  Publisher& publisher = publish_labels();
  const CommandResult r = run_cpipc({"ls", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;

  const auto list = nlohmann::json::parse(r.out);
  ASSERT_TRUE(list.is_array());
  const nlohmann::json* mine = nullptr;
  for (const auto& entry : list) {
    if (entry.at("name") == name_) mine = &entry;
  }
  ASSERT_NE(mine, nullptr) << r.out;
  EXPECT_EQ(mine->at("dtype"), "uint16");
  EXPECT_EQ(mine->at("shape"), nlohmann::json::array({40, 56}));
  EXPECT_EQ(mine->at("state"), "live");
  EXPECT_EQ(mine->at("producer_pid"), publisher.process().pid());
  EXPECT_EQ(mine->at("producer_alive"), true);
  EXPECT_EQ(mine->at("frames_published"), 1);
}

TEST_F(Cli, InfoJsonDescribesTheSegment) {
  Publisher& publisher = publish_labels();
  const CommandResult r = run_cpipc({"info", name_, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;

  const auto info = nlohmann::json::parse(r.out);
  EXPECT_EQ(info.at("name"), name_);
  EXPECT_EQ(info.at("dtype"), "uint16");
  EXPECT_EQ(info.at("shape"), nlohmann::json::array({40, 56}));
  EXPECT_EQ(info.at("strides"), nlohmann::json::array({56, 1}));
  EXPECT_EQ(info.at("frame_bytes"), labels_.data.size());
  EXPECT_EQ(info.at("slots"), 4);
  EXPECT_EQ(info.at("abi"), "1.0");
  EXPECT_EQ(info.at("state"), "live");
  EXPECT_EQ(info.at("producer_pid"), publisher.process().pid());
  EXPECT_EQ(info.at("export_kind"), "none");
  EXPECT_EQ(info.at("shm_path"), ipc::shm_file_path(name_));
  EXPECT_EQ(info.at("latest").at("frame_id"), 1);
  EXPECT_NE(info.at("latest").at("meta").get<std::string>().find("labels.npy"), std::string::npos);
}

TEST_F(Cli, RmRemovesTheSegment) {
  Publisher& publisher = publish_labels();
  const CommandResult r = run_cpipc({"rm", name_});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "removed '" + name_ + "'\n");
  EXPECT_FALSE(shm_exists(name_));
  EXPECT_EQ(publisher.stop(), 0) << "its producer still ends cleanly";
}

TEST_F(Cli, GcRemovesTheSegmentOfAKilledPublisher) {
  Publisher& publisher = publish_labels();
  publisher.process().kill();  // SIGKILL: no chance to unlink
  ASSERT_TRUE(shm_exists(name_));

  // Named: other tests' dead segments (ctest -j) are theirs to look at.
  const CommandResult r = run_cpipc({"gc", "--json", name_});

  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::array({name_})) << r.out;
  EXPECT_FALSE(shm_exists(name_));
}

TEST_F(Cli, GcLeavesALivePublishersSegment) {
  publish_labels();
  const CommandResult r = run_cpipc({"gc", name_});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(shm_exists(name_));
}

TEST_F(Cli, ABadNameExits2) {
  const std::string file = input("labels.npy");
  expect_failure(run_cpipc({"publish", file, "../etc"}), 2);
  expect_failure(run_cpipc({"info", "a/b"}), 2);
  expect_failure(run_cpipc({"save", ".hidden", dir_.file("out.npy")}), 2);
  expect_failure(run_cpipc({"rm", std::string(129, 'n')}), 2);
}

TEST_F(Cli, AMissingSegmentExits3) {
  const std::string name = unique_name();
  expect_failure(run_cpipc({"info", name}), 3);
  expect_failure(run_cpipc({"save", name, dir_.file("out.npy")}), 3);
  expect_failure(run_cpipc({"rm", name}), 3);
}

TEST_F(Cli, AMissingInputFileExits3) {
  const std::string name = unique_name();
  expect_failure(run_cpipc({"publish", dir_.file("absent.npy"), name}), 3);
  if (io::image_codecs_available()) expect_failure(run_cpipc({"publish", dir_.file("absent.png"), name}), 3);
  EXPECT_FALSE(shm_exists(name));
}

TEST_F(Cli, AnUnknownExtensionExits2) {
  publish_labels();
  expect_failure(run_cpipc({"save", name_, dir_.file("out.xyz")}), 2);
  const std::string odd = input("labels.npy") + ".xyz";
  std::filesystem::copy_file(dir_.file("labels.npy"), odd);
  const std::string name = unique_name();
  expect_failure(run_cpipc({"publish", odd, name}), 2);
  EXPECT_FALSE(shm_exists(name));
}

TEST_F(Cli, AFileThatIsNotAnImageExits2) {
  SKIP_WITHOUT_IMAGE_CODECS();
  const std::string fake = dir_.file("fake.png");
  std::FILE* f = std::fopen(fake.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("not a png\n", f);
  std::fclose(f);
  expect_failure(run_cpipc({"publish", fake, unique_name()}), 2);
}

TEST_F(Cli, ANameInUseExits1) {
  publish_labels();
  expect_failure(run_cpipc({"publish", input("labels.npy"), name_}), 1);
}

TEST_F(Cli, AnUnwritableOutputExits1) {
  publish_labels();
  std::vector<std::string> files = {"out.npy", "out.bin"};
  if (io::image_codecs_available()) files.insert(files.end(), {"out.png", "out.tif"});
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    expect_failure(run_cpipc({"save", name_, dir_.file("no-such-dir/" + file)}), 1);
  }
}

#if !CPIPC_HAVE_TORCH_CLI
TEST_F(Cli, SegmentWithoutLibTorchSaysHowToGetIt) {
  const CommandResult r = run_cpipc({"segment", input("labels.npy")});
  expect_failure(r, 1);
  EXPECT_NE(r.err.find("this build has no LibTorch"), std::string::npos) << r.err;
}
#endif

TEST_F(Cli, TheDemoRunsEndToEndAndLeavesNothingBehind) {
  const std::string out = dir_.file("demo");
  const CommandResult r = run_cpipc({"demo", "-o", out}, std::chrono::seconds(300));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("cleanup"), std::string::npos) << r.out;
#if CPIPC_HAVE_TORCH_CLI
  // The service demo: every bundled sample segmented and consumed.
  for (const char* file :
       {"cells_0_cp_masks.png", "cells_0_stats.csv", "cells_0_outlines.png", "cells_2_cp_masks.png"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + file)) << file;
  }
  EXPECT_NE(r.out.find("AP@0.5"), std::string::npos) << r.out;
#endif
  // This demo's segments (it prints their names): another test's demo may be
  // running beside this one under ctest -j, with segments of its own.
  std::set<std::string> ours;
  const std::regex demo_name("demo-[0-9]+");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), demo_name), end; it != end; ++it) ours.insert(it->str());
  ASSERT_FALSE(ours.empty()) << "the demo no longer prints its segment's name: " << r.out;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string file = e.path().filename().string();
    for (const std::string& name : ours) {
      EXPECT_FALSE(file.ends_with("." + name) || file.find("." + name + ".") != std::string::npos)
          << "left behind: " << e.path();
    }
  }
  const CommandResult only = run_cpipc({"demo", "-o", out, "--segment-only"}, std::chrono::seconds(60));
  EXPECT_EQ(only.status, 0) << only.err;
  EXPECT_NE(only.out.find("identical"), std::string::npos) << only.out;
}

#if CPIPC_HAVE_TORCH_CLI
// Where there is no OpenCV (the lent GPU machines): the samples are
// uncompressed TIFF and the pictures PNG, which cpipc reads and writes itself.
TEST_F(Cli, TheServiceDemoNeedsNoOpenCV) {
  const std::string out = dir_.file("demo");
  const CommandResult r = run_cpipc({"demo", "-o", out}, std::chrono::seconds(300), "export CPIPC_CODECS=none");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("AP@0.5"), std::string::npos) << r.out;
  for (const char* file : {"cells_1_cp_masks.png", "cells_1_stats.csv", "cells_1_outlines.png"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + file)) << file;
  }
}
#endif

// A Cellpose masks file (<stem>_cp_masks) is published with its object
// count, and `watch` shows it.
TEST_F(Cli, WatchShowsTheObjectCountOfPublishedMasks) {
  name_ = unique_name();
  const Publisher publisher(input("cells_cp_masks.npy"), name_);
  const CommandResult r = run_cpipc({"watch", name_, "--count", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["objects"], 35) << r.out;
  const std::string other = unique_name();
  const Publisher image(input("cells.npy"), other);  // an image, not masks: no count
  EXPECT_EQ(nlohmann::json::parse(run_cpipc({"watch", other, "--count", "1"}).out)["objects"], 0);
}

// Mistakes on the command line are told what was meant, in one line.
TEST_F(Cli, AMistypedOptionIsToldTheNearestAndABadNumberWhatIsWanted) {
  CommandResult r = run_cpipc({"submit", "x.tif", "--flow-treshold", "0.5"});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("did you mean --flow-threshold?"), std::string::npos) << r.err;
  r = run_cpipc({"submit", "x.tif", "--diameter", "-5"});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("a positive number of pixels"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("1.79769"), std::string::npos) << r.err;
  r = run_cpipc({"submit", "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--flow-threshold"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("--flow_threshold"), std::string::npos) << r.out;
}

TEST_F(Cli, UsageErrorsExit2) {
  expect_failure(run_cpipc({}), 2);
  expect_failure(run_cpipc({"publish"}), 2);
  expect_failure(run_cpipc({"ls", "--no-such-flag"}), 2);
  expect_failure(run_cpipc({"publish", input("labels.npy"), unique_name(), "--slots", "9"}), 2);
}

// `cpipc masks` on a stack's [4, Z, Y, X] flows runs the 3-D dynamics and
// writes Cellpose's masks, [Z, Y, X]; image formats cannot hold a stack.
TEST_F(Cli, MasksOfAStackAreCellposes3DMasks) {
  const std::string fixtures = CPIPC_SOURCE_DIR "/tests/data/dynamics/";
  const std::string out = dir_.file("masks.npy");
  const CommandResult r = run_cpipc({"masks", "--flows", fixtures + "touching3d_flows.npy", "-o", out, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("shape"), nlohmann::json::array({16, 56, 56}));
  const io::Array ours = io::read_npy(out);
  const io::Array cellpose = io::read_npy(fixtures + "touching3d_masks.npy");
  EXPECT_TRUE(ours.desc.same_layout(cellpose.desc)) << ours.desc.to_string();
  EXPECT_EQ(ours.data, cellpose.data);
  expect_failure(run_cpipc({"masks", "--flows", fixtures + "touching3d_flows.npy", "-o", dir_.file("m.png")}), 2);
}

}  // namespace
}  // namespace cpipc
