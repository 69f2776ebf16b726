// 3-D masks from per-plane masks, checked against Cellpose itself: fixtures
// made by tools/dynamics/make_stitch_fixtures.py with Cellpose 3.1.1.2's
// utils.stitch3D and fill_holes_and_remove_small_masks (committed in
// tests/data/dynamics; CPIPC_STITCH_FIXTURES points at a freshly made set).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cpipc/dynamics/stitch.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"

namespace dyn = cpipc::dynamics;
namespace io = cpipc::io;

namespace {

std::string fixture_dir() {
  if (const char* dir = std::getenv("CPIPC_STITCH_FIXTURES")) return dir;
  return CPIPC_SOURCE_DIR "/tests/data/dynamics";
}

struct Volume {
  int depth = 0, height = 0, width = 0;
  std::vector<std::uint32_t> labels;
};

Volume load(const std::string& file) {
  const io::Array a = io::read_npy(fixture_dir() + "/" + file);
  Volume v;
  v.depth = static_cast<int>(a.desc.shape[0]);
  v.height = static_cast<int>(a.desc.shape[1]);
  v.width = static_cast<int>(a.desc.shape[2]);
  v.labels = io::to_labels(a, file);
  return v;
}

std::uint32_t distinct(const std::vector<std::uint32_t>& v) {
  std::vector<std::uint32_t> s;
  for (auto x : v)
    if (x) s.push_back(x);
  std::sort(s.begin(), s.end());
  return static_cast<std::uint32_t>(std::unique(s.begin(), s.end()) - s.begin());
}

// The first voxel where two volumes differ, for a readable failure.
std::string first_difference(const Volume& want, const std::vector<std::uint32_t>& got) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want.labels[i]) {
      const std::size_t plane = static_cast<std::size_t>(want.height) * want.width;
      return "first at z " + std::to_string(i / plane) + ", y " + std::to_string(i % plane / want.width) + ", x " +
             std::to_string(i % want.width) + ": " + std::to_string(got[i]) + " (Cellpose " +
             std::to_string(want.labels[i]) + ")";
    }
  }
  return "none";
}

struct StitchCase {
  std::string name;
  int threshold_percent;
};

std::string case_name(const ::testing::TestParamInfo<StitchCase>& info) {
  return info.param.name + "_t" + std::to_string(info.param.threshold_percent);
}

class CellposeStitch : public ::testing::TestWithParam<StitchCase> {
 protected:
  std::string tag() const { return "stitch_" + GetParam().name + "_t" + std::to_string(GetParam().threshold_percent); }
  float threshold() const { return static_cast<float>(GetParam().threshold_percent) / 100.0f; }
};

TEST_P(CellposeStitch, StitchedIdsEqualCellposesStitch3D) {
  Volume v = load("stitch_" + GetParam().name + "_planes.npy");
  const Volume want = load(tag() + "_stitched.npy");
  const std::uint32_t count = dyn::stitch_planes(v.labels, v.depth, v.height, v.width, threshold());
  EXPECT_EQ(v.labels, want.labels) << first_difference(want, v.labels);
  EXPECT_EQ(count, distinct(want.labels));
}

TEST_P(CellposeStitch, MasksEqualCellposesFillHolesAfterStitching) {
  Volume v = load("stitch_" + GetParam().name + "_planes.npy");
  const Volume want = load(tag() + "_masks.npy");
  dyn::stitch_planes(v.labels, v.depth, v.height, v.width, threshold());
  const std::uint32_t count = dyn::fill_holes_and_remove_small_masks_3d(v.labels, v.depth, v.height, v.width, 15);
  EXPECT_EQ(v.labels, want.labels) << first_difference(want, v.labels);
  EXPECT_EQ(count, distinct(want.labels));
}

INSTANTIATE_TEST_SUITE_P(StitchFixtures, CellposeStitch,
                         ::testing::Values(StitchCase{"ellipsoids", 25}, StitchCase{"ellipsoids", 50},
                                           StitchCase{"ellipsoids", 75}, StitchCase{"merge", 25},
                                           StitchCase{"merge", 50}, StitchCase{"merge", 75}, StitchCase{"gaps", 25},
                                           StitchCase{"gaps", 50}, StitchCase{"gaps", 75}, StitchCase{"empty", 25},
                                           StitchCase{"empty", 50}, StitchCase{"empty", 75}),
                         case_name);

TEST(Stitch, FillHolesWithoutMinSizeNumbersByRankAsCellpose) {
  Volume v = load("stitch_ellipsoids_planes.npy");
  const Volume want = load("stitch_ellipsoids_t25_masks_nomin.npy");
  dyn::stitch_planes(v.labels, v.depth, v.height, v.width, 0.25f);
  dyn::fill_holes_and_remove_small_masks_3d(v.labels, v.depth, v.height, v.width, -1);
  EXPECT_EQ(v.labels, want.labels) << first_difference(want, v.labels);
}

// The random volumes `make_stitch_fixtures.py --random N` packs (the live
// ctest makes 300 with the installed Cellpose; none are committed).
TEST(Stitch, RandomVolumesEqualTheInstalledCellpose) {
  const std::string dir = fixture_dir();
  if (!std::filesystem::exists(dir + "/stitch_random_index.npy")) {
    GTEST_SKIP() << "no random volumes in " << dir << " (make_stitch_fixtures.py --random N makes them)";
  }
  const io::Array index = io::read_npy(dir + "/stitch_random_index.npy");
  ASSERT_EQ(index.desc.ndim, 2u);
  ASSERT_EQ(index.desc.shape[1], 4);
  std::vector<std::int64_t> rows(static_cast<std::size_t>(index.desc.shape[0]) * 4);
  ASSERT_EQ(index.data.size(), rows.size() * sizeof(std::int64_t));
  std::memcpy(rows.data(), index.data.data(), index.data.size());
  const std::vector<float> thresholds =
      io::to_float32(io::read_npy(dir + "/stitch_random_threshold.npy"), "thresholds");
  const auto flat = [&](const char* name) {
    return io::to_labels(io::read_npy(dir + "/stitch_random_" + name + ".npy"), name);
  };
  const std::vector<std::uint32_t> planes = flat("planes"), stitched = flat("stitched"), masks = flat("masks");
  std::size_t at = 0;
  for (std::size_t k = 0; k < thresholds.size(); ++k) {
    const int d = static_cast<int>(rows[k * 4]), h = static_cast<int>(rows[k * 4 + 1]),
              w = static_cast<int>(rows[k * 4 + 2]), min_size = static_cast<int>(rows[k * 4 + 3]);
    const std::size_t n = static_cast<std::size_t>(d) * h * w;
    ASSERT_LE(at + n, planes.size());
    std::vector<std::uint32_t> v(planes.begin() + at, planes.begin() + at + n);
    const std::vector<std::uint32_t> want_stitched(stitched.begin() + at, stitched.begin() + at + n);
    const std::vector<std::uint32_t> want_masks(masks.begin() + at, masks.begin() + at + n);
    at += n;
    dyn::stitch_planes(v, d, h, w, thresholds[k]);
    ASSERT_EQ(v, want_stitched) << "volume " << k << " (" << d << " x " << h << " x " << w << ", threshold "
                                << thresholds[k] << ")";
    dyn::fill_holes_and_remove_small_masks_3d(v, d, h, w, min_size);
    ASSERT_EQ(v, want_masks) << "volume " << k << " (min_size " << min_size << ")";
  }
  EXPECT_EQ(at, planes.size());
}

TEST(Stitch, OnePlaneKeepsItsLabels) {
  std::vector<std::uint32_t> l = {0, 7, 7, 0, 3, 0};
  EXPECT_EQ(dyn::stitch_planes(l, 1, 2, 3, 0.25f), 2u);
  EXPECT_EQ(l, (std::vector<std::uint32_t>{0, 7, 7, 0, 3, 0}));
}

TEST(Stitch, AnObjectOverlappingTheOneBelowKeepsItsId) {
  // Plane 1's label 5 covers plane 0's label 2 (IoU 2/3): it becomes 2;
  // its label 1 overlaps nothing: a new id, 2 + 1 (label 1 of 5 values).
  std::vector<std::uint32_t> l = {2, 2, 0, 0,  //
                                  5, 5, 5, 1};
  EXPECT_EQ(dyn::stitch_planes(l, 2, 1, 4, 0.5f), 2u);
  EXPECT_EQ(l, (std::vector<std::uint32_t>{2, 2, 0, 0, 2, 2, 2, 3}));
}

TEST(Stitch, ThresholdIsComparedAsItsDecimalForm) {
  // IoU 1/10 == 0.1: stitched, as Cellpose's `iou < 0.1` is false for it
  // (the float 0.1f, as a double, is a little above 0.1).
  std::vector<std::uint32_t> l(20, 0);
  for (int x = 0; x < 10; ++x) l[x] = 1;
  l[10] = 1;
  EXPECT_EQ(dyn::stitch_planes(l, 2, 1, 10, 0.1f), 1u);
  EXPECT_EQ(l[10], 1u);
}

TEST(Stitch, MismatchedSizesAreAClearError) {
  std::vector<std::uint32_t> l(5, 0);
  EXPECT_THROW(dyn::stitch_planes(l, 2, 1, 3, 0.25f), cpipc::Error);
  EXPECT_THROW(dyn::fill_holes_and_remove_small_masks_3d(l, 1, 2, 3, 15), cpipc::Error);
  EXPECT_THROW(dyn::stitch_planes(l, -1, 1, 3, 0.25f), cpipc::Error);
}

TEST(Stitch, IdsPastUint32AreAClearError) {
  // Plane 0 holds id 2^32 - 1; plane 1's label 1 overlaps nothing and would
  // take id 2^32.
  std::vector<std::uint32_t> l = {0xFFFFFFFFu, 0, 0, 1};
  try {
    (void)dyn::stitch_planes(l, 2, 1, 2, 0.25f);
    FAIL() << "no throw";
  } catch (const cpipc::Error& e) {
    EXPECT_EQ(e.code(), cpipc::Errc::invalid_argument);
  }
}

TEST(Stitch, EmptyVolumeGivesNoObjects) {
  std::vector<std::uint32_t> l;
  EXPECT_EQ(dyn::stitch_planes(l, 0, 4, 4, 0.25f), 0u);
  EXPECT_EQ(dyn::fill_holes_and_remove_small_masks_3d(l, 3, 0, 4, 15), 0u);
  std::vector<std::uint32_t> zeros(2 * 3 * 3, 0);
  EXPECT_EQ(dyn::stitch_planes(zeros, 2, 3, 3, 0.25f), 0u);
  EXPECT_EQ(dyn::fill_holes_and_remove_small_masks_3d(zeros, 2, 3, 3, 15), 0u);
}

TEST(FillHoles3D, ACavityClosedIn3DIsFilledAndWhatItHoldsSwallowed) {
  // A 5x5x5 cube of label 4 with a 1-voxel cavity holding label 9.
  std::vector<std::uint32_t> l(5 * 5 * 5, 4);
  l[(2 * 5 + 2) * 5 + 2] = 9;
  EXPECT_EQ(dyn::fill_holes_and_remove_small_masks_3d(l, 5, 5, 5, -1), 1u);
  for (auto v : l) EXPECT_EQ(v, 1u);
}

TEST(FillHoles3D, AHoleOpenAlongZIsNotFilled) {
  // A tube along z: each plane is a ring with a hole, but the hole runs
  // out of the box at the top and bottom faces, so fill_voids keeps it.
  std::vector<std::uint32_t> l(3 * 3 * 3, 1);
  for (int z = 0; z < 3; ++z) l[(z * 3 + 1) * 3 + 1] = 0;
  EXPECT_EQ(dyn::fill_holes_and_remove_small_masks_3d(l, 3, 3, 3, -1), 1u);
  for (int z = 0; z < 3; ++z) EXPECT_EQ(l[(z * 3 + 1) * 3 + 1], 0u);
}

TEST(FillHoles3D, FillsTheEdgeVoxelFillVoidsDoesNotSeed) {
  // fill_voids 2.1.2 (checked): in this [3, 3, 4] box the background voxel
  // (0, 0, 2) lies on two faces, yet each face's scan reaches it straight
  // after another background voxel (the run flag carries over the line
  // end), so no seed is put there; its neighbours in the box are all mask.
  std::vector<std::uint32_t> l(3 * 3 * 4, 0);
  const auto at = [&](int z, int y, int x) -> std::uint32_t& { return l[(z * 3 + y) * 4 + x]; };
  at(1, 0, 2) = at(0, 1, 2) = at(0, 0, 1) = at(0, 0, 3) = 1;
  dyn::fill_holes_and_remove_small_masks_3d(l, 3, 3, 4, -1);
  EXPECT_EQ(at(0, 0, 2), 1u);
  std::size_t filled = 0;
  for (auto v : l) filled += v;
  EXPECT_EQ(filled, 5u);
}

TEST(FillHoles3D, SmallObjectsAreRemovedAndTheRestRenumberedByFirstAppearance) {
  std::vector<std::uint32_t> l(2 * 4 * 4, 0);
  for (int i = 0; i < 16; ++i) l[i] = 50;  // plane 0: 16 voxels of 50
  l[16] = 7;                               // plane 1: 1 voxel of 7 (removed)
  for (int i = 20; i < 32; ++i) l[i] = 3;  // 12 voxels of 3
  EXPECT_EQ(dyn::fill_holes_and_remove_small_masks_3d(l, 2, 4, 4, 10), 2u);
  EXPECT_EQ(l[0], 1u);
  EXPECT_EQ(l[16], 0u);
  EXPECT_EQ(l[20], 2u);
}

}  // namespace
