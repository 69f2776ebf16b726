// Cellpose's dynamics, checked against Cellpose itself: fixtures made by
// tools/dynamics/make_fixtures.py with the installed Cellpose (committed in
// tests/data/dynamics; CPIPC_DYNAMICS_FIXTURES points at a freshly made set).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"
#include "cpipc/post/metrics.hpp"
#include "src/dynamics/flows_detail.hpp"
#include "support/test_support.hpp"

namespace dyn = cpipc::dynamics;
namespace io = cpipc::io;
namespace test = cpipc::test;

namespace {

std::string fixture_dir() {
  if (const char* dir = std::getenv("CPIPC_DYNAMICS_FIXTURES")) return dir;
  return CPIPC_SOURCE_DIR "/tests/data/dynamics";
}

struct Case {
  int height = 0, width = 0;
  std::vector<float> flows;  // [3, H, W]
  dyn::Flows view() const {
    const std::size_t plane = static_cast<std::size_t>(height) * width;
    return {{flows.data(), plane}, {flows.data() + plane, plane}, {flows.data() + 2 * plane, plane}, height, width};
  }
};

Case load_case(const std::string& name) {
  const io::Array a = io::read_npy(fixture_dir() + "/" + name + "_flows.npy");
  Case c;
  c.height = static_cast<int>(a.desc.shape[1]);
  c.width = static_cast<int>(a.desc.shape[2]);
  c.flows = io::to_float32(a, name);
  return c;
}

dyn::Labels load_labels(const std::string& file) {
  const io::Array a = io::read_npy(fixture_dir() + "/" + file);
  dyn::Labels l;
  l.height = static_cast<int>(a.desc.shape[0]);
  l.width = static_cast<int>(a.desc.shape[1]);
  l.data = io::to_labels(a, file);
  for (auto v : l.data) l.count = std::max(l.count, v);
  return l;
}

// Cellpose's AP at IoU 0.5 (cpipc::post's matching).
double ap50(const dyn::Labels& truth, const dyn::Labels& pred) {
  return cpipc::post::match_at_iou50(truth.data, pred.data).ap();
}

double same_pixels(const dyn::Labels& a, const dyn::Labels& b) {
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.data.size(); ++i) same += a.data[i] == b.data[i];
  return a.data.empty() ? 1.0 : static_cast<double>(same) / static_cast<double>(a.data.size());
}

class CellposeFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(CellposeFixture, MasksMatchCellposeWithQualityControl) {
  const Case c = load_case(GetParam());
  const dyn::Labels ours = dyn::masks_from_flows(c.view(), dyn::Params{});
  const dyn::Labels ref = load_labels(GetParam() + "_masks_qc.npy");
  EXPECT_GE(ap50(ref, ours), 0.99);
  EXPECT_LE(std::abs(static_cast<double>(ours.count) - ref.count), 0.01 * ref.count);
  EXPECT_GE(same_pixels(ref, ours), 0.9999) << "labels are numbered differently or pixels moved";
}

TEST_P(CellposeFixture, MasksMatchCellposeWithoutQualityControl) {
  const Case c = load_case(GetParam());
  dyn::Params p;
  p.flow_threshold = 0.0f;
  const dyn::Labels ours = dyn::masks_from_flows(c.view(), p);
  const dyn::Labels ref = load_labels(GetParam() + "_masks_noqc.npy");
  EXPECT_GE(ap50(ref, ours), 0.99);
  EXPECT_LE(std::abs(static_cast<double>(ours.count) - ref.count), 0.01 * ref.count);
  EXPECT_GE(same_pixels(ref, ours), 0.9999);
}

TEST_P(CellposeFixture, Sse2AndAvx2KernelsGiveTheSameMasks) {
  const Case c = load_case(GetParam());
  const dyn::Labels fast = dyn::masks_from_flows(c.view(), dyn::Params{});
  test::ScopedEnv sse("CPIPC_NO_AVX2", "1");
  const dyn::Labels plain = dyn::masks_from_flows(c.view(), dyn::Params{});
  EXPECT_EQ(fast.data, plain.data);
}

TEST_P(CellposeFixture, FlowsFromMasksMatchCellpose) {
  const dyn::Labels labels = load_labels(GetParam() + "_labels.npy");
  const dyn::UnitFlows ours = dyn::flows_from_masks(labels);
  const io::Array mu = io::read_npy(fixture_dir() + "/" + GetParam() + "_mu.npy");
  const std::vector<float> ref = io::to_float32(mu, "mu");
  const std::size_t plane = labels.data.size();
  double sum = 0;
  for (std::size_t i = 0; i < plane; ++i) sum += std::abs(ours.dy[i] - ref[i]) + std::abs(ours.dx[i] - ref[plane + i]);
  EXPECT_LE(sum / (2.0 * static_cast<double>(plane)), 0.02);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CellposeFixture,
                         ::testing::Values("touching", "elongated", "border", "tiny", "empty", "qc", "dense384"));

// ---- 3-D ------------------------------------------------------------------

struct Case3D {
  int depth = 0, height = 0, width = 0;
  std::vector<float> flows;  // [4, Z, Y, X]: dZ, dY, dX, cellprob
  dyn::Flows3D view() const {
    const std::size_t n = static_cast<std::size_t>(depth) * height * width;
    return {{flows.data(), n},
            {flows.data() + n, n},
            {flows.data() + 2 * n, n},
            {flows.data() + 3 * n, n},
            depth,
            height,
            width};
  }
};

Case3D load_case_3d(const std::string& name) {
  const io::Array a = io::read_npy(fixture_dir() + "/" + name + "_flows.npy");
  Case3D c;
  c.depth = static_cast<int>(a.desc.shape[1]);
  c.height = static_cast<int>(a.desc.shape[2]);
  c.width = static_cast<int>(a.desc.shape[3]);
  c.flows = io::to_float32(a, name);
  return c;
}

std::vector<std::uint32_t> load_volume(const std::string& file) {
  return io::to_labels(io::read_npy(fixture_dir() + "/" + file), file);
}

class CellposeFixture3D : public ::testing::TestWithParam<std::string> {};

// The same steps as Cellpose in the same float order: the same masks, label
// for label and voxel for voxel.
TEST_P(CellposeFixture3D, MasksAreCellposesExactly) {
  const Case3D c = load_case_3d(GetParam());
  const dyn::Labels3D ours = dyn::masks_from_flows_3d(c.view());
  const std::vector<std::uint32_t> ref = load_volume(GetParam() + "_masks.npy");
  ASSERT_EQ(ours.data.size(), ref.size());
  EXPECT_EQ(ours.count, *std::max_element(ref.begin(), ref.end()));
  std::size_t differ = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) differ += ours.data[i] != ref[i];
  EXPECT_EQ(differ, 0u) << "of " << ref.size() << " voxels";
}

// The SSE2 kernels (every x86-64; the AVX2 ones run where the CPU has
// AVX2) give the same masks.
TEST_P(CellposeFixture3D, MasksAreCellposesExactlyWithoutAvx2) {
  const Case3D c = load_case_3d(GetParam());
  test::ScopedEnv sse("CPIPC_NO_AVX2", "1");
  const dyn::Labels3D ours = dyn::masks_from_flows_3d(c.view());
  EXPECT_EQ(ours.data, load_volume(GetParam() + "_masks.npy"));
}

// A voxel stops once its path comes back to an earlier position; it must
// end exactly where all niter steps would leave it, in both kernels and
// for odd and even step counts (a masks comparison could not tell: a cycle
// stays within one voxel's bin).
TEST_P(CellposeFixture3D, StoppingAtCyclesEndsWhereEveryStepWould) {
  const Case3D c = load_case_3d(GetParam());
  const dyn::Flows3D f = c.view();
  std::vector<std::int64_t> pixels;
  for (std::size_t i = 0; i < f.cellprob.size(); ++i) {
    if (f.cellprob[i] > 0.0f) pixels.push_back(static_cast<std::int64_t>(i));
  }
  std::vector<float> field(4 * static_cast<std::size_t>(c.depth + 2) * (c.height + 2) * (c.width + 2));
  std::vector<std::int64_t> bins(pixels.size());
  const auto ends = [&](int niter, bool stop) {
    std::vector<float> e(3 * pixels.size());
    dyn::detail::follow_flows_3d(f, pixels, 0.0f, niter, field.data(), bins.data(), e.data(), stop);
    return e;
  };
  const auto check = [&](const char* kernel) {
    for (int niter : {1, 2, 37, 200}) {
      const std::vector<float> every = ends(niter, false), stopped = ends(niter, true);
      std::size_t differ = 0;
      for (std::size_t i = 0; i < every.size(); ++i) {
        differ += std::memcmp(&every[i], &stopped[i], sizeof(float)) != 0;
      }
      EXPECT_EQ(differ, 0u) << niter << " steps, " << kernel << ", of " << every.size() << " coordinates";
    }
  };
  check(dyn::detail::use_avx2() ? "AVX2" : "SSE2");
  test::ScopedEnv sse("CPIPC_NO_AVX2", "1");
  check("SSE2");
}

// The flows come from the synthetic labels: the masks find those objects
// (most of them: cells cut by the stack's faces to a sliver are hard, for
// Cellpose as for us, which is why the bar is 0.8).
TEST_P(CellposeFixture3D, MasksFindTheSyntheticObjects) {
  const Case3D c = load_case_3d(GetParam());
  const dyn::Labels3D ours = dyn::masks_from_flows_3d(c.view());
  const std::vector<std::uint32_t> truth = load_volume(GetParam() + "_labels.npy");
  const auto objects = *std::max_element(truth.begin(), truth.end());
  if (objects == 0) {
    EXPECT_EQ(ours.count, 0u);
    return;
  }
  EXPECT_GE(cpipc::post::match_at_iou50(truth, ours.data).ap(), 0.8);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CellposeFixture3D,
                         ::testing::Values("touching3d", "aniso3d", "border3d", "hollow3d", "empty3d"));

// Holes are filled in 3-D, as fill_voids: the void inside a closed shell
// joins the shell; the bore of a tube open at both ends is no hole (filling
// plane by plane would fill it).
TEST(Dynamics3D, HolesAreFilledInThreeDimensions) {
  const Case3D c = load_case_3d("hollow3d");
  const dyn::Labels3D l = dyn::masks_from_flows_3d(c.view());
  const auto at = [&](int z, int y, int x) {
    return l.data[(static_cast<std::size_t>(z) * l.height + y) * l.width + x];
  };
  ASSERT_EQ(l.count, 2u);
  EXPECT_NE(at(5, 10, 10), 0u) << "the shell's void is filled";
  EXPECT_EQ(at(5, 10, 10), at(1, 10, 10)) << "with the shell's label";
  EXPECT_EQ(at(5, 25, 25), 0u) << "the tube's bore stays empty";
}

TEST(Dynamics3D, FlowThresholdIsIgnoredAsInCellpose) {
  const Case3D c = load_case_3d("touching3d");
  dyn::Params strict;
  strict.flow_threshold = 0.01f;
  EXPECT_EQ(dyn::masks_from_flows_3d(c.view(), strict).data, dyn::masks_from_flows_3d(c.view()).data);
}

TEST(Dynamics3D, NaNFlowsAreAClearError) {
  Case3D c = load_case_3d("border3d");
  c.flows[123] = std::nanf("");
  try {
    (void)dyn::masks_from_flows_3d(c.view());
    FAIL() << "no error";
  } catch (const cpipc::Error& e) {
    EXPECT_EQ(e.code(), cpipc::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos);
  }
}

TEST(Dynamics3D, InfiniteCellprobIsAClearError) {
  Case3D c = load_case_3d("border3d");
  c.flows.back() = -INFINITY;
  EXPECT_THROW((void)dyn::masks_from_flows_3d(c.view()), cpipc::Error);
}

TEST(Dynamics3D, PlanesOfDifferentSizesAreAClearError) {
  const Case3D c = load_case_3d("border3d");
  dyn::Flows3D f = c.view();
  f.dz = f.dz.subspan(1);
  try {
    (void)dyn::masks_from_flows_3d(f);
    FAIL() << "no error";
  } catch (const cpipc::Error& e) {
    EXPECT_EQ(e.code(), cpipc::Errc::invalid_argument);
  }
  f = c.view();
  f.depth += 1;
  EXPECT_THROW((void)dyn::masks_from_flows_3d(f), cpipc::Error);
}

TEST(Dynamics3D, EmptyAndBackgroundStacksGiveZeros) {
  const dyn::Labels3D none = dyn::masks_from_flows_3d(dyn::Flows3D{{}, {}, {}, {}, 0, 0, 0});
  EXPECT_EQ(none.count, 0u);
  EXPECT_TRUE(none.data.empty());
  const int d = 5, h = 20, w = 24;
  std::vector<float> zero(d * h * w, 0.0f), low(d * h * w, -3.0f);
  const dyn::Labels3D l = dyn::masks_from_flows_3d(dyn::Flows3D{{zero}, {zero}, {zero}, {low}, d, h, w});
  EXPECT_EQ(l.count, 0u);
  EXPECT_EQ(l.depth, d);
  ASSERT_EQ(l.data.size(), zero.size());
  for (auto v : l.data) ASSERT_EQ(v, 0u);
}

// One plane as a stack: no axis of length 1 moves (Cellpose would divide by
// zero there) and nothing crashes.
TEST(Dynamics3D, OnePlaneStackDoesNotCrash) {
  const Case c = load_case("touching");
  const std::size_t n = static_cast<std::size_t>(c.height) * c.width;
  const std::vector<float> zero(n, 0.0f);
  const dyn::Labels3D l = dyn::masks_from_flows_3d(dyn::Flows3D{
      {zero}, {c.flows.data(), n}, {c.flows.data() + n, n}, {c.flows.data() + 2 * n, n}, 1, c.height, c.width});
  EXPECT_GT(l.count, 0u);
  EXPECT_EQ(l.data.size(), n);
}

TEST(Dynamics, QualityControlDropsMasksWhoseFlowsDisagree) {
  const Case c = load_case("qc");
  dyn::Params with, without;
  without.flow_threshold = 0.0f;
  EXPECT_LT(dyn::masks_from_flows(c.view(), with).count, dyn::masks_from_flows(c.view(), without).count);
}

TEST(Dynamics, LabelsAreConsecutiveInFirstAppearanceOrder) {
  const Case c = load_case("dense384");
  const dyn::Labels l = dyn::masks_from_flows(c.view());
  std::uint32_t next = 1;
  for (std::uint32_t v : l.data) {
    if (v == 0) continue;
    ASSERT_LE(v, next) << "label " << v << " appears before label " << next;
    if (v == next) ++next;
  }
  EXPECT_EQ(next - 1, l.count);
}

TEST(Dynamics, NaNFlowsAreAClearError) {
  Case c = load_case("tiny");
  c.flows[100] = std::nanf("");
  try {
    (void)dyn::masks_from_flows(c.view());
    FAIL() << "no error";
  } catch (const cpipc::Error& e) {
    EXPECT_EQ(e.code(), cpipc::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos);
  }
}

TEST(Dynamics, InfiniteCellprobIsAClearError) {
  Case c = load_case("tiny");
  c.flows.back() = INFINITY;
  EXPECT_THROW((void)dyn::masks_from_flows(c.view()), cpipc::Error);
}

TEST(Dynamics, FlowsAndCellprobOfDifferentSizesAreAClearError) {
  const Case c = load_case("tiny");
  dyn::Flows f = c.view();
  f.cellprob = f.cellprob.subspan(1);
  EXPECT_THROW((void)dyn::masks_from_flows(f), cpipc::Error);
}

TEST(Dynamics, ZeroSizedImageGivesEmptyMasks) {
  const dyn::Labels l = dyn::masks_from_flows(dyn::Flows{{}, {}, {}, 0, 0});
  EXPECT_EQ(l.count, 0u);
  EXPECT_TRUE(l.data.empty());
}

TEST(Dynamics, OnePixelImagesGiveNoMasksAndNoCrash) {
  const float dy = 1, dx = 1, cp = 5;
  const dyn::Labels l = dyn::masks_from_flows(dyn::Flows{{&dy, 1}, {&dx, 1}, {&cp, 1}, 1, 1});
  EXPECT_EQ(l.count, 0u);  // one pixel converges to a bin of 1 < 10: no seed
  std::vector<float> row(50, 3.0f);
  const dyn::Labels r = dyn::masks_from_flows(dyn::Flows{{row}, {row}, {row}, 1, 50});
  EXPECT_EQ(r.data.size(), 50u);
}

TEST(Dynamics, AllBackgroundGivesZeros) {
  const int h = 64, w = 48;
  std::vector<float> zero(h * w, 0.0f), low(h * w, -3.0f);
  const dyn::Labels l = dyn::masks_from_flows(dyn::Flows{{zero}, {zero}, {low}, h, w});
  EXPECT_EQ(l.count, 0u);
  for (auto v : l.data) ASSERT_EQ(v, 0u);
}

// 260 x 260 square objects of 5 x 5 pixels: more labels than uint16 holds,
// so the result must be uint32 labels, one per object.
TEST(Dynamics, MoreThan65535MasksComeBackAsUint32Labels) {
  const int n = 260, cell = 6, side = 5, h = n * cell, w = n * cell;
  dyn::Labels truth;
  truth.height = h;
  truth.width = w;
  truth.data.resize(static_cast<std::size_t>(h) * w);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const bool inside = y % cell < side && x % cell < side;
      truth.data[static_cast<std::size_t>(y) * w + x] =
          inside ? static_cast<std::uint32_t>((y / cell) * n + (x / cell) + 1) : 0;
    }
  }
  truth.count = n * n;
  const dyn::UnitFlows mu = dyn::flows_from_masks(truth);
  std::vector<float> dy(mu.dy.size()), dx(mu.dx.size()), cp(mu.dy.size());
  for (std::size_t i = 0; i < dy.size(); ++i) {
    dy[i] = 5.0f * mu.dy[i];
    dx[i] = 5.0f * mu.dx[i];
    cp[i] = truth.data[i] ? 5.0f : -5.0f;
  }
  dyn::Params p;
  p.niter = 40;  // 5-pixel objects converge in a few steps; keeps the test quick
  const dyn::Labels l = dyn::masks_from_flows(dyn::Flows{{dy}, {dx}, {cp}, h, w}, p);
  EXPECT_FALSE(l.fits_uint16());
  EXPECT_EQ(l.count, truth.count);
  EXPECT_GE(ap50(truth, l), 0.99);
}

}  // namespace
