// `cpipc segment` with Cellpose's command line: a folder (--dir) as
// Cellpose's CLI takes it, every Cellpose spelling parsed to the same
// settings as cpipc's, typos and bad numbers told what was meant, and the
// normalisation and edge options against Cellpose 3.1.1.2's own results.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cpipc/io/array_file.hpp"
#include "cpipc/io/convert.hpp"
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

const std::string kModel = CPIPC_SOURCE_DIR "/tests/data/model/";
const std::string kFlags = CPIPC_SOURCE_DIR "/tests/data/flags/";

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

class SegmentFlags : public ::testing::Test {
 protected:
  // The tiny16 fixture (17 x 23, two cells) as a TIFF at `rel` under the temp dir.
  std::string tiff(const std::string& rel) {
    const fs::path p = dir_.path() / rel;
    fs::create_directories(p.parent_path());
    io::write_tiff(p.string(), io::read_npy(kModel + "tiny16/image.npy").view(), "YX");
    return p.string();
  }
  void touch(const std::string& rel) {
    fs::create_directories((dir_.path() / rel).parent_path());
    std::ofstream(dir_.path() / rel) << "not an image";
  }
  // The images (relative to the temp dir) of a --json run, and its summary.
  std::vector<std::string> images(const std::vector<nlohmann::json>& lines, nlohmann::json* summary = nullptr) {
    std::vector<std::string> out;
    for (const auto& j : lines) {
      if (j.contains("summary")) {
        if (summary) *summary = j["summary"];
        continue;
      }
      out.push_back(fs::relative(j["image"].get<std::string>(), dir_.path()).string());
    }
    return out;
  }
  // What `segment ARGS --dry-run` would use.
  nlohmann::json settings(std::vector<std::string> args) {
    args.insert(args.begin(), "segment");
    args.push_back("--dry-run");
    const CommandResult r = run_cpipc(args, 60s);
    EXPECT_EQ(r.status, 0) << r.err;
    const auto lines = json_lines(r.out);
    if (lines.size() != 1 || !lines[0].contains("dry_run")) {
      ADD_FAILURE() << r.out;
      return {};
    }
    return lines[0]["dry_run"];
  }
  test::TempDir dir_;
};

TEST_F(SegmentFlags, AFolderIsSegmentedAsCellposeTakesItWithASummaryAndItsOutputsAreNotSegmentedAgain) {
  tiff("in/a10.tif");
  tiff("in/a2.tif");
  tiff("in/b_dapi.tif");
  tiff("in/sub/c.tif");
  touch("in/notes.txt");
  touch("in/old_cp_masks.png");  // outputs of an earlier run: never inputs
  touch("in/old_flows.tif");
  const std::string in = dir_.file("in");
  for (int run = 0; run < 2; ++run) {  // the second run finds the first one's outputs beside the images
    const CommandResult r = run_cpipc({"segment", "--dir", in, "--device", "cpu", "--json"}, 120s);
    ASSERT_EQ(r.status, 0) << r.err;
    nlohmann::json summary;
    EXPECT_EQ(images(json_lines(r.out), &summary),
              (std::vector<std::string>{"in/a2.tif", "in/a10.tif", "in/b_dapi.tif"}))
        << "run " << run;
    EXPECT_EQ(summary["images"], 3);
    EXPECT_EQ(summary["segmented"], 3);
    EXPECT_EQ(summary["failed"], 0);
    EXPECT_TRUE(fs::exists(dir_.file("in/a2_cp_masks.png")));
  }
  const CommandResult down = run_cpipc({"segment", "--dir", in, "--look-one-level-down", "--img-filter", "c", "-o",
                                        dir_.file("out"), "--device", "cpu", "--json"},
                                       120s);
  ASSERT_EQ(down.status, 0) << down.err;
  EXPECT_EQ(images(json_lines(down.out)), (std::vector<std::string>{"in/sub/c.tif"}));
  EXPECT_TRUE(fs::exists(dir_.file("out/c_cp_masks.png")));

  // Without --json: one line per image, then the summary line.
  const CommandResult text = run_cpipc({"segment", "--dir", in, "--img_filter", "_dapi", "--device", "cpu"}, 120s);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("b_dapi.tif: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(in + ": 1 image(s), 1 segmented"), std::string::npos) << text.out;
}

TEST_F(SegmentFlags, AFolderWithNothingToSegmentIsOneLineAndExit3) {
  fs::create_directories(dir_.file("empty"));
  CommandResult r = run_cpipc({"segment", "--dir", dir_.file("empty")});
  expect_failure(r, 3);
  EXPECT_NE(r.err.find("is empty"), std::string::npos) << r.err;
  touch("outputs/x_cp_masks.png");
  r = run_cpipc({"segment", "--dir", dir_.file("outputs")});
  expect_failure(r, 3);
  EXPECT_NE(r.err.find("other than segmentation outputs"), std::string::npos) << r.err;
  expect_failure(run_cpipc({"segment", "--dir", dir_.file("absent")}), 3);
  expect_failure(run_cpipc({"segment"}), 2);  // neither images nor --dir
}

TEST_F(SegmentFlags, EveryCellposeSpellingGivesTheSameSettingsAsCpipcs) {
  const std::string image = tiff("in/x_dapi.tif");
  const std::string in = dir_.file("in");
  const std::string out = dir_.file("out");
  struct Pair {
    std::vector<std::string> cellpose, cpipc;
  };
  const std::vector<Pair> pairs = {
      {{image, "--flow_threshold", "0.7"}, {image, "--flow-threshold", "0.7"}},
      {{image, "--cellprob_threshold", "-1.5"}, {image, "--cellprob-threshold", "-1.5"}},
      {{image, "--min_size", "30"}, {image, "--min-size", "30"}},
      {{image, "--batch_size", "4"}, {image, "--batch-size", "4"}},
      {{image, "--savedir", out}, {image, "-o", out}},
      {{image, "--pretrained_model", "m.pt"}, {image, "--model", "m.pt"}},
      {{image, "--chan", "2", "--chan2", "3"}, {image, "--channels", "2,3"}},
      {{image, "--chan", "1"}, {image, "--channels", "1,0"}},
      {{image, "--use_gpu"}, {image, "--device", "cuda"}},
      {{image, "--use_gpu", "--gpu_device", "1"}, {image, "--device", "cuda:1"}},
      {{image, "--channel_axis", "2", "--z_axis", "0"}, {image, "--channel-axis", "2", "--z-axis", "0"}},
      {{image, "--no_norm"}, {image, "--no-norm"}},
      {{image, "--norm_percentile", "5", "95"}, {image, "--norm-percentile", "5", "95"}},
      {{image, "--exclude_on_edges"}, {image, "--exclude-on-edges"}},
      {{image, "--no_resample"}, {image, "--no-resample"}},
      {{image, "--augment"}, {image, "--augment"}},
      {{image, "--save_png", "--save_txt", "--verbose"}, {image}},
      {{"--image_path", image}, {image}},
      {{"--dir", in, "--img_filter", "_dapi", "--look_one_level_down", "--mask_filter", "_x"},
       {"--dir", in, "--img-filter", "_dapi", "--look-one-level-down", "--mask-filter", "_x"}},
  };
  const nlohmann::json defaults = settings({image});
  for (const Pair& p : pairs) {
    const nlohmann::json a = settings(p.cellpose);
    EXPECT_EQ(a, settings(p.cpipc)) << p.cellpose[p.cellpose.size() > 1 ? 1 : 0];
    if (p.cpipc.size() > 1) {
      EXPECT_NE(a, defaults) << p.cellpose[1] << " changed nothing";
    }
  }
  // What they set, spot-checked.
  const nlohmann::json s = settings({image, "--norm_percentile", "5", "95", "--chan", "2", "--use_gpu"});
  EXPECT_EQ(s["norm_percentile"], nlohmann::json({5.0, 95.0}));
  EXPECT_EQ(s["channels"], "2,0");
  EXPECT_EQ(s["device"], "cuda");
  EXPECT_EQ(s["images"], nlohmann::json({image}));
}

TEST_F(SegmentFlags, ContradictionsAndMistakesAreOneLineExit2) {
  const std::string image = tiff("x.tif");
  CommandResult r = run_cpipc({"segment", image, "--flow-treshold", "0.5"});
  expect_failure(r, 2);
  EXPECT_NE(r.err.find("did you mean --flow-threshold?"), std::string::npos) << r.err;
  for (const char* bad : {"abc", "-5"}) {
    r = run_cpipc({"segment", image, "--diameter", bad});
    expect_failure(r, 2);
    EXPECT_NE(r.err.find("a positive number of pixels"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("1.79769"), std::string::npos) << r.err;
  }
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--norm-percentile", "95", "5"},
                                             {"--norm-percentile", "1", "101"},
                                             {"--norm-percentile", "1"},
                                             {"--no-norm", "--norm-percentile", "1", "99"},
                                             {"--chan", "1", "--channels", "1,0"},
                                             {"--use_gpu", "--device", "cpu"}}) {
    std::vector<std::string> full = {"segment", image, "--dry-run"};
    full.insert(full.end(), args.begin(), args.end());
    expect_failure(run_cpipc(full), 2);
  }
}

TEST_F(SegmentFlags, HelpShowsTheCpipcSpellings) {
  const CommandResult r = run_cpipc({"segment", "--help"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* name : {"--flow-threshold", "--norm-percentile LOW HIGH", "--exclude-on-edges", "--dir",
                           "--no-outlines", "-o,--output-dir"}) {
    EXPECT_NE(r.out.find(name), std::string::npos) << name << " in\n" << r.out;
  }
  for (const char* hidden : {"{false}", ",--flow_threshold", ",--savedir", ",--pretrained_model", "Excludes"}) {
    EXPECT_EQ(r.out.find(hidden), std::string::npos) << hidden << " in\n" << r.out;
  }
}

// Cellpose's utils.remove_edge_masks, written out: border labels go, the rest
// keep their order.
std::vector<std::uint32_t> without_edge_masks(const std::vector<std::uint32_t>& m, int h, int w) {
  std::set<std::uint32_t> border;
  for (int x = 0; x < w; ++x) border.insert({m[x], m[static_cast<std::size_t>(h - 1) * w + x]});
  for (int y = 0; y < h; ++y)
    border.insert({m[static_cast<std::size_t>(y) * w], m[static_cast<std::size_t>(y) * w + w - 1]});
  std::vector<std::uint32_t> id(*std::max_element(m.begin(), m.end()) + 1, 0);
  std::uint32_t next = 0;
  for (std::uint32_t l = 1; l < id.size(); ++l) id[l] = border.count(l) ? 0 : ++next;
  std::vector<std::uint32_t> out(m.size());
  std::transform(m.begin(), m.end(), out.begin(), [&](std::uint32_t l) { return id[l]; });
  return out;
}

TEST_F(SegmentFlags, ExcludeOnEdgesDropsTheMasksThatTouchTheBorder) {
  const std::string image = kModel + "gray16_up/image.npy";
  const auto masks = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"segment", image, "--diameter", "20", "-o", dir_.file(out), "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CommandResult r = run_cpipc(args, 120s);
    EXPECT_EQ(r.status, 0) << r.err;
    return test::read_masks_png(dir_.file(out + "/image_cp_masks.png"));
  };
  const std::vector<std::uint32_t> all = masks("all", {});
  const std::vector<std::uint32_t> inner = masks("inner", {"--exclude-on-edges"});
  ASSERT_EQ(all.size(), 250u * 333u);
  EXPECT_EQ(inner, without_edge_masks(all, 250, 333));
  EXPECT_LT(*std::max_element(inner.begin(), inner.end()), *std::max_element(all.begin(), all.end()));
}

TEST_F(SegmentFlags, NormPercentileSegmentsAsCellposeDoes) {
  // Cellpose 3.1.1.2's eval(normalize={"percentile": (5, 95)}) on gray8_nodiam's image.
  const CommandResult r = run_cpipc({"segment", kModel + "gray8_nodiam/image.npy", "--norm-percentile", "5", "95", "-o",
                                     dir_.file("out"), "--device", "cpu", "--json"},
                                    120s);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::uint32_t> ours = test::read_masks_png(dir_.file("out/image_cp_masks.png"));
  const std::vector<std::uint32_t> cellpose = io::to_labels(io::read_npy(kFlags + "norm_5_95/masks.npy"), "ref");
  ASSERT_EQ(ours.size(), cellpose.size());
  EXPECT_GE(test::ap50(cellpose, ours), 0.98);
}

TEST_F(SegmentFlags, NoResampleSegmentsAsCellposeDoes) {
  // Cellpose 3.1.1.2's eval(resample=False, diameter=20) on gray16_up: flows at
  // 375 x 499, 200 steps there, masks resized back to 250 x 333.
  const CommandResult r = run_cpipc({"segment", kModel + "gray16_up/image.npy", "--diameter", "20", "--no-resample",
                                     "-o", dir_.file("out"), "--device", "cpu", "--json", "--save-flows"},
                                    120s);
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = json_lines(r.out).at(0);
  EXPECT_EQ(j["niter"], 200);
  EXPECT_EQ(j["shape"], nlohmann::json({250, 333}));
  EXPECT_EQ(io::read_npy(dir_.file("out/image_flows.npy")).desc.shape[1], 250) << "flows at the image's size";
  const std::vector<std::uint32_t> ours = test::read_masks_png(dir_.file("out/image_cp_masks.png"));
  const std::vector<std::uint32_t> cellpose = io::to_labels(io::read_npy(kFlags + "no_resample/masks.npy"), "ref");
  ASSERT_EQ(ours.size(), cellpose.size());
  EXPECT_GE(test::ap50(cellpose, ours), 0.98);
}

TEST_F(SegmentFlags, AugmentSegmentsAsCellposeDoes) {
  // Cellpose 3.1.1.2's eval(augment=True, diameter=20) on gray16_up: 4 x 5
  // half-overlapping tiles of the 400 x 528 padded image, flipped by parity.
  const CommandResult r = run_cpipc({"segment", kModel + "gray16_up/image.npy", "--diameter", "20", "--augment", "-o",
                                     dir_.file("out"), "--device", "cpu", "--json"},
                                    180s);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_lines(r.out).at(0)["tiles"], 20);
  const std::vector<std::uint32_t> ours = test::read_masks_png(dir_.file("out/image_cp_masks.png"));
  const std::vector<std::uint32_t> cellpose = io::to_labels(io::read_npy(kFlags + "augment/masks.npy"), "ref");
  ASSERT_EQ(ours.size(), cellpose.size());
  EXPECT_GE(test::ap50(cellpose, ours), 0.98);
}

}  // namespace
}  // namespace cpipc
