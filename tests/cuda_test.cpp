// The CUDA module end to end: compile, launch, copy back. Runs on a machine
// with a GPU; elsewhere it is skipped, saying why.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cpipc/cuda/device.hpp"

namespace cpipc::cuda {
namespace {

TEST(Cuda, AProbeKernelFillsAndCopiesBack) {
  std::string why;
  if (device_count(&why) == 0) GTEST_SKIP() << "no CUDA device: " << why;

  const std::vector<std::uint32_t> values = run_probe_kernel(100'000, 3, 7);

  ASSERT_EQ(values.size(), 100'000u);
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(values[i], static_cast<std::uint32_t>(i * 3 + 7)) << "at " << i;
  }
}

TEST(Cuda, DeviceZeroHasANameAndMemory) {
  std::string why;
  if (device_count(&why) == 0) GTEST_SKIP() << "no CUDA device: " << why;

  const auto info = device_info(0);
  ASSERT_TRUE(info);
  EXPECT_FALSE(info->name.empty());
  EXPECT_GT(info->total_memory, 0u);
  EXPECT_TRUE(uuid_string(info->uuid).starts_with("GPU-"));
}

TEST(Cuda, NoDeviceIsReportedWithAReason) {
  std::string why;
  if (device_count(&why) > 0) GTEST_SKIP() << "this machine has a CUDA device";
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(device_info(0), std::nullopt);
}

}  // namespace
}  // namespace cpipc::cuda
