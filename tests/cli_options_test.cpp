// cpipc's command line without running a command: which files --dir takes
// (Cellpose's io.get_image_files rules), how --help names options, what a
// mistyped option is told, and what a bad number is told.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cpipc/error.hpp"
#include "support/test_support.hpp"
#include "tools/cpipc/cli_help.hpp"
#include "tools/cpipc/folder_inputs.hpp"
#include "tools/cpipc/number_checks.hpp"

namespace cpipc::cli {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

FolderQuery query(std::string dir, std::string img_filter = "", std::string mask_filter = "_masks",
                  bool look_one_level_down = false) {
  return {std::move(dir), std::move(img_filter), std::move(mask_filter), look_one_level_down};
}

std::vector<std::string> names(const std::vector<std::string>& paths, const fs::path& root) {
  std::vector<std::string> out;
  for (const std::string& p : paths) out.push_back(fs::relative(p, root).string());
  return out;
}

// natsort 8.4's natsorted() of these paths, run in Cellpose's venv.
TEST(FolderInputs, NaturalOrderIsNatsorts) {
  std::vector<std::string> v = {"D/sub//x.png", "D/sub2//y.png", "D/a.png",    "D/img10.png", "D/img2.png",
                                "D/10.png",     "D/9b.png",      "D/Img1.png", "D/img01.png", "D/img1.png"};
  std::sort(v.begin(), v.end(), natural_less);
  const std::vector<std::string> natsorted = {"D/9b.png",      "D/10.png",    "D/Img1.png", "D/a.png",
                                              "D/img01.png",   "D/img1.png",  "D/img2.png", "D/img10.png",
                                              "D/sub2//y.png", "D/sub//x.png"};
  EXPECT_EQ(v, natsorted);
}

TEST(FolderInputs, ImagesAreTakenAndOutputsSkippedAsCellposeDoes) {
  test::TempDir d;
  for (const char* f :
       {"img2.tif", "img10.tif", "b.PNG", "c.jpeg", "d.Tif", ".hidden.png", "notes.txt", "e.npy", "img2_cp_masks.png",
        "img2_masks.tif", "img2_flows.tif", "img2_cp_outlines.png", "img2_outlines.png", "x_seg.png", "x_cellprob.tif",
        "x_flows_0.tif", "x_cp_output.png", "raw.nd2", "sub/s1.png"}) {
    touch(d.path() / f);
  }
  const FolderImages f = folder_images(query(d.path().string()));
  // .Tif is neither ".tif" nor ".TIF"; .npy is not one of Cellpose's; sub/ is one level down.
  EXPECT_EQ(names(f.images, d.path()), (std::vector<std::string>{"b.PNG", "c.jpeg", "img2.tif", "img10.tif"}));
  EXPECT_EQ(names(f.unsupported, d.path()), (std::vector<std::string>{"raw.nd2"}));
}

TEST(FolderInputs, FiltersAndOneLevelDown) {
  test::TempDir d;
  for (const char* f : {"a_dapi.tif", "a_gfp.tif", "b_dapi.png", "sub/c_dapi.tif", "sub/deeper/e_dapi.tif",
                        "sub/c_dapi_manual.tif", ".git/h_dapi.tif"}) {
    touch(d.path() / f);
  }
  const std::string dir = d.path().string();
  EXPECT_EQ(names(folder_images(query(dir, "_dapi")).images, d.path()),
            (std::vector<std::string>{"a_dapi.tif", "b_dapi.png"}));
  EXPECT_EQ(names(folder_images(query(dir, "_dapi", "_masks", true)).images, d.path()),
            (std::vector<std::string>{"a_dapi.tif", "b_dapi.png", "sub/c_dapi.tif"}));
  // --mask_filter: one more ending to skip.
  EXPECT_EQ(names(folder_images(query(dir, "", "_gfp")).images, d.path()),
            (std::vector<std::string>{"a_dapi.tif", "b_dapi.png"}));
  EXPECT_EQ(names(folder_images(query(dir + "/sub", "", "_manual")).images, d.path()),
            (std::vector<std::string>{"sub/c_dapi.tif"}));
}

TEST(FolderInputs, NothingToSegmentIsOneErrorSayingWhy) {
  test::TempDir d;
  const auto message = [](const FolderQuery& q, Errc code) {
    try {
      (void)folder_images(q);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      return std::string(e.what());
    }
    ADD_FAILURE() << "no error for " << q.dir;
    return std::string();
  };
  EXPECT_NE(message(query(d.file("absent")), Errc::not_found).find("no folder"), std::string::npos);
  touch(d.path() / "file.txt");
  EXPECT_NE(message(query(d.file("file.txt")), Errc::invalid_argument).find("not a folder"), std::string::npos);
  fs::create_directories(d.path() / "empty");
  EXPECT_NE(message(query(d.file("empty")), Errc::not_found).find("is empty"), std::string::npos);
  EXPECT_NE(message(query(d.path().string()), Errc::not_found).find("with extensions .png"), std::string::npos);
  touch(d.path() / "a_cp_masks.png");
  touch(d.path() / "a_flows.tif");
  EXPECT_NE(message(query(d.path().string()), Errc::not_found).find("other than segmentation outputs"),
            std::string::npos);
  touch(d.path() / "a.tif");
  EXPECT_NE(message(query(d.path().string(), "_dapi"), Errc::not_found).find("end with '_dapi'"), std::string::npos);
}

// A small app with the shapes cpipc's subcommands use.
struct Cmd {
  CLI::App app{"test"};
  CLI::App* sub = nullptr;
  double threshold = 0.4;
  bool outlines = true;
  bool use_gpu = false;
  double diameter = 0;
  Cmd() {
    app.formatter(std::make_shared<HelpFormatter>());
    sub = app.add_subcommand("segment");
    sub->add_option("--flow-threshold,--flow_threshold", threshold, "QC threshold");
    sub->add_option("-o,--output-dir,--savedir", threshold, "where");
    sub->add_flag("!--no-outlines", outlines, "no outlines");
    sub->add_option("--diameter", diameter, "px")->check(diameter_pixels());
    sub->add_flag("--use_gpu", use_gpu, "Cellpose's")->group(kCellposeGroup)->excludes(sub->get_option("--diameter"));
  }
  std::string parse_error(std::vector<std::string> args) {
    std::reverse(args.begin(), args.end());
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      return e.what();
    }
    return "";
  }
};

TEST(CliHelp, ListsEachOptionUnderItsCpipcSpellingOnly) {
  Cmd c;
  const std::string help = c.sub->help();
  EXPECT_NE(help.find("--flow-threshold"), std::string::npos) << help;
  EXPECT_NE(help.find("-o,--output-dir"), std::string::npos) << help;
  EXPECT_NE(help.find("--no-outlines"), std::string::npos) << help;
  for (const char* hidden :
       {"--flow_threshold", "--savedir", "{false}", "--use_gpu", "Cellpose spellings", "Excludes"}) {
    EXPECT_EQ(help.find(hidden), std::string::npos) << hidden << " in\n" << help;
  }
}

TEST(CliHelp, AMistypedOptionGetsTheNearestSuggested) {
  {
    Cmd c;
    EXPECT_NE(c.parse_error({"segment", "--flow-treshold", "0.5"}).find("not expected"), std::string::npos);
    EXPECT_EQ(did_you_mean(c.app), "--flow-threshold");
  }
  {
    Cmd c;  // Cellpose's spelling, mistyped: the cpipc spelling is suggested
    (void)c.parse_error({"segment", "--flow_treshold=0.5"});
    EXPECT_EQ(did_you_mean(c.app), "--flow-threshold");
  }
  {
    Cmd c;
    (void)c.parse_error({"segment", "--no-outline"});
    EXPECT_EQ(did_you_mean(c.app), "--no-outlines");
  }
  {
    Cmd c;  // nothing near
    (void)c.parse_error({"segment", "--zzzzzzzz"});
    EXPECT_EQ(did_you_mean(c.app), "");
  }
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
}

TEST(CliHelp, ABadDiameterSaysWhatIsWanted) {
  for (const char* bad : {"abc", "-5", "nan", "inf", ""}) {
    Cmd c;
    const std::string e = c.parse_error({"segment", "--diameter", bad});
    EXPECT_NE(e.find("a positive number of pixels"), std::string::npos) << bad << ": " << e;
    EXPECT_LT(e.size(), 120u) << "no 300-digit range: " << e;
  }
  Cmd c;
  EXPECT_EQ(c.parse_error({"segment", "--diameter", "17.5"}), "");
  EXPECT_EQ(c.diameter, 17.5);
}

}  // namespace
}  // namespace cpipc::cli
