// Measurements and outlines of label images (cpipc::post), checked against
// what scikit-image's regionprops and Cellpose's masks_to_outlines / saved
// outline picture give for the same images (tests/data/stats, made by
// tools/stats/make_stats_fixture.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/post/outlines.hpp"
#include "cpipc/post/stats.hpp"
#include "post_fixture.hpp"

namespace cpipc {
namespace {

using test::fixture_labels;
using test::parse_csv;
using test::read_text;
using test::stats_data;

std::vector<float> fixture_image(const std::string& file) {
  return io::to_float32(io::read_npy(stats_data(file)), file);
}

std::vector<std::uint8_t> fixture_bytes(const std::string& file) {
  const io::Array a = io::read_npy(stats_data(file));
  std::vector<std::uint8_t> out(a.data.size());
  std::memcpy(out.data(), a.data.data(), out.size());
  return out;
}

TEST(Stats, MatchRegionpropsOnTheFixture) {
  const auto f = fixture_labels();
  const std::vector<float> gray = fixture_image("gray.npy");
  const auto stats = post::object_stats(f.labels.data(), f.height, f.width, gray.data(), 1);
  test::expect_table_near(parse_csv(post::stats_csv(stats, 1)), parse_csv(read_text(stats_data("stats_gray.csv"))));
}

TEST(Stats, MultiChannelImagesGetColumnsPerChannel) {
  const auto f = fixture_labels();
  const std::vector<float> rgb = fixture_image("rgb.npy");
  const auto stats = post::object_stats(f.labels.data(), f.height, f.width, rgb.data(), 3);
  const auto got = parse_csv(post::stats_csv(stats, 3));
  EXPECT_EQ(got.header.back(), "intensity_max_c2");
  test::expect_table_near(got, parse_csv(read_text(stats_data("stats_rgb.csv"))));
}

TEST(Stats, WithoutAnImageThereAreNoIntensityColumns) {
  const auto f = fixture_labels();
  const auto stats = post::object_stats(f.labels.data(), f.height, f.width);
  ASSERT_FALSE(stats.empty());
  EXPECT_TRUE(stats[0].intensity.empty());
  const auto csv = parse_csv(post::stats_csv(stats, 0));
  EXPECT_EQ(csv.header.back(), "equivalent_diameter");
  EXPECT_EQ(csv.header.size(), 10u);
  EXPECT_THROW((void)post::stats_csv(stats, 1), Error);  // the objects have no intensity
}

TEST(Stats, OneRowPerLabelPresentInIncreasingOrder) {
  // Labels 9, 2 and 4000000000 (far above the pixel count), in that raster order.
  const std::vector<std::uint32_t> labels = {9, 9, 0, 2, 0, 4000000000u, 0, 2, 2};
  const auto stats = post::object_stats(labels.data(), 3, 3);
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[0].label, 2u);
  EXPECT_EQ(stats[0].area, 3);
  EXPECT_EQ(stats[1].label, 9u);
  EXPECT_EQ(stats[2].label, 4000000000u);
  EXPECT_EQ(stats[2].area, 1);
  EXPECT_EQ(stats[2].bbox_y0, 1);
  EXPECT_EQ(stats[2].bbox_x0, 2);
  EXPECT_EQ(stats[2].bbox_y1, 2);
  EXPECT_EQ(stats[2].bbox_x1, 3);
}

TEST(Stats, SquareMeasuresAsRegionpropsSays) {
  // A 4x4 square in a 6x6 image: 12 border pixels of weight 1 (corners: two
  // border 4-neighbours, code 5; edges: two border 4-neighbours and two
  // border diagonals, code 25), so the perimeter is 12.
  std::vector<std::uint32_t> labels(36, 0);
  for (int y = 1; y < 5; ++y) {
    for (int x = 1; x < 5; ++x) labels[y * 6 + x] = 1;
  }
  const auto stats = post::object_stats(labels.data(), 6, 6);
  ASSERT_EQ(stats.size(), 1u);
  const auto& s = stats[0];
  EXPECT_EQ(s.area, 16);
  EXPECT_DOUBLE_EQ(s.centroid_y, 2.5);
  EXPECT_DOUBLE_EQ(s.centroid_x, 2.5);
  EXPECT_DOUBLE_EQ(s.perimeter, 12.0);
  EXPECT_DOUBLE_EQ(s.equivalent_diameter, std::sqrt(64 / std::numbers::pi));
}

TEST(Stats, EmptyImagesHaveNoObjects) {
  EXPECT_TRUE(post::object_stats(nullptr, 0, 0).empty());
  const std::vector<std::uint32_t> background(12, 0);
  EXPECT_TRUE(post::object_stats(background.data(), 3, 4).empty());
  EXPECT_EQ(post::stats_csv({}, 1),
            "label,area,centroid_y,centroid_x,bbox_y0,bbox_x0,bbox_y1,bbox_x1,perimeter,equivalent_diameter,"
            "intensity_mean,intensity_min,intensity_max\n");
}

TEST(Stats, BadArgumentsThrowInvalidArgument) {
  const std::uint32_t one = 1;
  try {
    (void)post::object_stats(&one, -1, 1);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
  }
  EXPECT_THROW((void)post::object_stats(nullptr, 2, 2), Error);
  const float v = 0;
  EXPECT_THROW((void)post::object_stats(&one, 1, 1, &v, 0), Error);
}

// 3-D: labels_3d.npy [6, 20, 24] against regionprops of the same volume
// (tools/stats/make_stats_3d_fixture.py).
struct Volume3D {
  std::vector<std::uint32_t> labels;
  int depth = 0, height = 0, width = 0;
};

Volume3D fixture_volume() {
  const io::Array a = io::read_npy(stats_data("labels_3d.npy"));
  return {io::to_labels(a, "labels_3d.npy"), static_cast<int>(a.desc.shape[0]), static_cast<int>(a.desc.shape[1]),
          static_cast<int>(a.desc.shape[2])};
}

TEST(Stats3D, MatchRegionpropsOnTheFixture) {
  const Volume3D v = fixture_volume();
  const std::vector<float> gray = fixture_image("gray_3d.npy");
  const auto stats = post::object_stats_3d(v.labels.data(), v.depth, v.height, v.width, gray.data(), 1);
  const auto got = parse_csv(post::stats_csv_3d(stats, 1));
  const auto want = parse_csv(read_text(stats_data("stats_3d_gray.csv")));
  EXPECT_EQ(got.header, want.header);
  test::expect_table_near(got, want);
}

TEST(Stats3D, MultiChannelVolumesGetColumnsPerChannel) {
  const Volume3D v = fixture_volume();
  const std::vector<float> two = fixture_image("two_3d.npy");
  const auto stats = post::object_stats_3d(v.labels.data(), v.depth, v.height, v.width, two.data(), 2);
  const auto got = parse_csv(post::stats_csv_3d(stats, 2));
  EXPECT_EQ(got.header.back(), "intensity_max_c1");
  test::expect_table_near(got, parse_csv(read_text(stats_data("stats_3d_two.csv"))));
}

TEST(Stats3D, CubeMeasuresAsRegionpropsSays) {
  // A 2x3x4 block of label 9 at z 1, y 2, x 3 in a 4x6x8 volume.
  std::vector<std::uint32_t> l(4 * 6 * 8, 0);
  for (int z = 1; z < 3; ++z)
    for (int y = 2; y < 5; ++y)
      for (int x = 3; x < 7; ++x) l[(z * 6 + y) * 8 + x] = 9;
  const auto stats = post::object_stats_3d(l.data(), 4, 6, 8);
  ASSERT_EQ(stats.size(), 1u);
  const post::ObjectStats3D& s = stats[0];
  EXPECT_EQ(s.label, 9u);
  EXPECT_EQ(s.volume, 24);
  EXPECT_DOUBLE_EQ(s.centroid_z, 1.5);
  EXPECT_DOUBLE_EQ(s.centroid_y, 3.0);
  EXPECT_DOUBLE_EQ(s.centroid_x, 4.5);
  EXPECT_EQ(s.bbox_z0, 1);
  EXPECT_EQ(s.bbox_y0, 2);
  EXPECT_EQ(s.bbox_x0, 3);
  EXPECT_EQ(s.bbox_z1, 3);
  EXPECT_EQ(s.bbox_y1, 5);
  EXPECT_EQ(s.bbox_x1, 7);
  EXPECT_DOUBLE_EQ(s.equivalent_diameter, std::cbrt(6 * 24 / std::numbers::pi));
  EXPECT_TRUE(s.intensity.empty());
}

TEST(Stats3D, EmptyVolumesHaveNoObjectsAndBadArgumentsThrow) {
  EXPECT_TRUE(post::object_stats_3d(nullptr, 0, 4, 4).empty());
  const std::vector<std::uint32_t> background(24, 0);
  EXPECT_TRUE(post::object_stats_3d(background.data(), 2, 3, 4).empty());
  EXPECT_EQ(post::stats_csv_3d({}, 0),
            "label,volume,centroid_z,centroid_y,centroid_x,bbox_z0,bbox_y0,bbox_x0,bbox_z1,bbox_y1,bbox_x1,"
            "equivalent_diameter\n");
  EXPECT_THROW((void)post::object_stats_3d(nullptr, 2, 2, 2), Error);
  EXPECT_THROW((void)post::object_stats_3d(background.data(), -1, 3, 4), Error);
  const float v = 0;
  EXPECT_THROW((void)post::object_stats_3d(background.data(), 2, 3, 4, &v, 0), Error);
  const auto stats = post::object_stats_3d(fixture_volume().labels.data(), 6, 20, 24);
  EXPECT_THROW((void)post::stats_csv_3d(stats, 1), Error);  // the objects have no intensity
}

TEST(Outlines, MaskEqualsCellposeMasksToOutlines) {
  const auto f = fixture_labels();
  const auto want = fixture_bytes("outlines.npy");
  const auto got = post::outline_mask(f.labels.data(), f.height, f.width);
  ASSERT_EQ(got.size(), want.size());
  for (int y = 0; y < f.height; ++y) {
    for (int x = 0; x < f.width; ++x) {
      const std::size_t i = static_cast<std::size_t>(y * f.width + x);
      EXPECT_EQ(got[i], want[i]) << "pixel (" << y << ", " << x << "), label " << f.labels[i];
    }
  }
}

TEST(Outlines, HoleRimsAndWhatIsInsideAHoleAreNotOutlines) {
  // A 5x5 ring of label 1 around a hole holding a pixel of label 1 and one of
  // label 2: only the ring's outer edge is an outline of 1; 2 is all outline.
  std::vector<std::uint32_t> labels(49, 0);
  for (int y = 1; y < 6; ++y) {
    for (int x = 1; x < 6; ++x) labels[y * 7 + x] = (y == 1 || y == 5 || x == 1 || x == 5) ? 1 : 0;
  }
  labels[3 * 7 + 3] = 1;
  labels[2 * 7 + 2] = 2;
  const auto o = post::outline_mask(labels.data(), 7, 7);
  for (int y = 0; y < 7; ++y) {
    for (int x = 0; x < 7; ++x) {
      const std::size_t i = static_cast<std::size_t>(y * 7 + x);
      const bool ring = labels[i] == 1 && (y == 1 || y == 5 || x == 1 || x == 5);
      EXPECT_EQ(o[i], ring || labels[i] == 2 ? 1 : 0) << y << ", " << x;
    }
  }
}

TEST(Outlines, TouchingMasksAreOutlinedOnBothSides) {
  const std::vector<std::uint32_t> labels = {1, 1, 1, 2, 2, 2,  //
                                             1, 1, 1, 2, 2, 2,  //
                                             1, 1, 1, 2, 2, 2};
  const auto o = post::outline_mask(labels.data(), 3, 6);
  const std::vector<std::uint8_t> want = {1, 1, 1, 1, 1, 1,  //
                                          1, 0, 1, 1, 0, 1,  //
                                          1, 1, 1, 1, 1, 1};
  EXPECT_EQ(o, want);
}

TEST(Outlines, PictureEqualsCellposeSavedOutlines) {
  const auto f = fixture_labels();
  const std::vector<float> gray = fixture_image("gray.npy");
  const auto want = fixture_bytes("outlines_rgb.npy");
  const auto got = post::draw_outlines(f.labels.data(), f.height, f.width, gray.data(), 1);
  ASSERT_EQ(got.size(), want.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < got.size(); ++i) differ += got[i] != want[i];
  EXPECT_EQ(differ, 0u) << "of " << got.size() << " bytes";
}

TEST(Outlines, WithoutAnImageTheyAreDrawnOnBlack) {
  const auto f = fixture_labels();
  const auto mask = fixture_bytes("outlines.npy");
  const post::Rgb green{0, 255, 0};
  const auto rgb = post::draw_outlines(f.labels.data(), f.height, f.width, nullptr, 1, green);
  for (std::size_t i = 0; i < mask.size(); ++i) {
    const post::Rgb want = mask[i] ? green : post::Rgb{0, 0, 0};
    ASSERT_EQ((post::Rgb{rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]}), want) << "pixel " << i;
  }
}

TEST(Outlines, DisplayScalesEachChannelBetweenItsPercentiles) {
  // 0..99 in the first channel, constant in the second: p1 = 0.99,
  // p99 = 98.01 (numpy); the constant channel is black.
  std::vector<float> image(200);
  for (int i = 0; i < 100; ++i) {
    image[2 * i] = static_cast<float>(i);
    image[2 * i + 1] = 7;
  }
  const auto rgb = post::display_rgb(image.data(), 10, 10, 2);
  EXPECT_EQ(rgb[0], 0);         // below p1: clipped
  EXPECT_EQ(rgb[99 * 3], 255);  // above p99: clipped
  EXPECT_EQ(rgb[50 * 3], 128);  // (50 - 0.99) / 97.02 * 255 = 128.8, truncated
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(rgb[i * 3 + 1], 0);
    EXPECT_EQ(rgb[i * 3 + 2], 0);
  }
}

}  // namespace
}  // namespace cpipc
