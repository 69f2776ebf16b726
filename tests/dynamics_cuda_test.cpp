// The CUDA dynamics against the CPU backend and Cellpose, on the reference
// fixtures. Skipped, saying why, where there is no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "cpipc/dynamics/cuda.hpp"
#include "cpipc/dynamics/dynamics.hpp"
#include "cpipc/error.hpp"
#include "cpipc/io/convert.hpp"
#include "cpipc/io/npy.hpp"

namespace dyn = cpipc::dynamics;
namespace io = cpipc::io;

namespace {

struct Loaded {
  int height = 0, width = 0;
  std::vector<float> planes;
  dyn::Flows view() const {
    const std::size_t n = static_cast<std::size_t>(height) * width;
    return {{planes.data(), n}, {planes.data() + n, n}, {planes.data() + 2 * n, n}, height, width};
  }
};

Loaded load(const std::string& name) {
  const io::Array a = io::read_npy(std::string(CPIPC_SOURCE_DIR) + "/tests/data/dynamics/" + name + "_flows.npy");
  return {static_cast<int>(a.desc.shape[1]), static_cast<int>(a.desc.shape[2]), io::to_float32(a, name)};
}

#define REQUIRE_GPU()                                                          \
  do {                                                                         \
    std::string why;                                                           \
    if (!dyn::gpu::available(&why)) GTEST_SKIP() << "no CUDA device: " << why; \
  } while (0)

class GpuAgainstCpu : public ::testing::TestWithParam<std::tuple<std::string, float>> {};

TEST_P(GpuAgainstCpu, SameObjectsAndPixels) {
  REQUIRE_GPU();
  const auto& [name, threshold] = GetParam();
  const Loaded c = load(name);
  dyn::Params p;
  p.flow_threshold = threshold;
  const dyn::Labels cpu = dyn::masks_from_flows(c.view(), p);
  const dyn::Labels gpu = dyn::gpu::masks_from_flows_via_device(c.view(), p);
  EXPECT_EQ(gpu.count, cpu.count);
  std::size_t same = 0;
  for (std::size_t i = 0; i < cpu.data.size(); ++i) same += cpu.data[i] == gpu.data[i];
  EXPECT_GE(static_cast<double>(same), 0.9999 * static_cast<double>(cpu.data.size()))
      << cpu.data.size() - same << " pixels differ";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuAgainstCpu,
                         ::testing::Combine(::testing::Values("touching", "elongated", "border", "tiny", "empty", "qc",
                                                              "dense384"),
                                            ::testing::Values(0.4f, 0.0f)));

// ---- 3-D ------------------------------------------------------------------

struct Loaded3D {
  int depth = 0, height = 0, width = 0;
  std::vector<float> planes;  // dZ, dY, dX, cellprob
  dyn::Flows3D view() const {
    const std::size_t n = static_cast<std::size_t>(depth) * height * width;
    return {{planes.data(), n},
            {planes.data() + n, n},
            {planes.data() + 2 * n, n},
            {planes.data() + 3 * n, n},
            depth,
            height,
            width};
  }
};

Loaded3D load_3d(const std::string& name) {
  const io::Array a = io::read_npy(std::string(CPIPC_SOURCE_DIR) + "/tests/data/dynamics/" + name + "_flows.npy");
  return {static_cast<int>(a.desc.shape[1]), static_cast<int>(a.desc.shape[2]), static_cast<int>(a.desc.shape[3]),
          io::to_float32(a, name)};
}

class GpuAgainstCpu3D : public ::testing::TestWithParam<std::string> {};

// The same steps in the same float order (no FMA): the same labels, voxel for voxel.
TEST_P(GpuAgainstCpu3D, SameLabelsVoxelForVoxel) {
  REQUIRE_GPU();
  const Loaded3D c = load_3d(GetParam());
  const dyn::Labels3D cpu = dyn::masks_from_flows_3d(c.view());
  const dyn::Labels3D gpu = dyn::gpu::masks_from_flows_3d_via_device(c.view());
  EXPECT_EQ(gpu.count, cpu.count);
  ASSERT_EQ(gpu.data.size(), cpu.data.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < cpu.data.size(); ++i) differ += cpu.data[i] != gpu.data[i];
  EXPECT_EQ(differ, 0u) << "of " << cpu.data.size() << " voxels";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuAgainstCpu3D,
                         ::testing::Values("touching3d", "aniso3d", "border3d", "hollow3d", "empty3d"));

TEST(GpuDynamics3D, NaNFlowsAreAClearError) {
  REQUIRE_GPU();
  Loaded3D c = load_3d("border3d");
  c.planes[11] = std::nanf("");
  EXPECT_THROW((void)dyn::gpu::masks_from_flows_3d_via_device(c.view()), cpipc::Error);
}

TEST(GpuDynamics3D, MismatchedPlanesAreAClearError) {
  REQUIRE_GPU();
  const Loaded3D c = load_3d("border3d");
  dyn::Flows3D f = c.view();
  f.cellprob = f.cellprob.subspan(1);
  EXPECT_THROW((void)dyn::gpu::masks_from_flows_3d_via_device(f), cpipc::Error);
}

TEST(GpuDynamics3D, AllBackgroundGivesZeros) {
  REQUIRE_GPU();
  const int d = 6, h = 40, w = 30;
  std::vector<float> zero(d * h * w, 0.0f), low(d * h * w, -2.0f);
  const dyn::Labels3D l =
      dyn::gpu::masks_from_flows_3d_via_device(dyn::Flows3D{{zero}, {zero}, {zero}, {low}, d, h, w});
  EXPECT_EQ(l.count, 0u);
  for (auto v : l.data) ASSERT_EQ(v, 0u);
}

TEST(GpuDynamics, NaNFlowsAreAClearError) {
  REQUIRE_GPU();
  Loaded c = load("tiny");
  c.planes[7] = std::nanf("");
  EXPECT_THROW((void)dyn::gpu::masks_from_flows_via_device(c.view()), cpipc::Error);
}

TEST(GpuDynamics, AllBackgroundGivesZeros) {
  REQUIRE_GPU();
  std::vector<float> zero(100 * 80, 0.0f), low(100 * 80, -2.0f);
  const dyn::Labels l = dyn::gpu::masks_from_flows_via_device(dyn::Flows{{zero}, {zero}, {low}, 100, 80});
  EXPECT_EQ(l.count, 0u);
}

}  // namespace
